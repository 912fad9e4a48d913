from airflow_stack.worker import taskwarmup


def test_modules_are_imported_and_a_missing_one_is_reported_not_raised(caplog):
    missing = taskwarmup.import_task_modules(("json", "airflow_stack_no_such_module"))
    assert missing == ["airflow_stack_no_such_module"]
    assert "cannot import airflow_stack_no_such_module" in caplog.text


def test_a_client_that_cannot_be_built_is_reported_not_raised(caplog):
    # The unit environment has no Airflow: the import fails, as would a changed constructor.
    assert taskwarmup.warm_api_client() is False
    assert "cannot build the task API client" in caplog.text


def test_a_parent_death_signal_that_cannot_be_read_is_reported_not_raised(caplog):
    # The unit environment has no billiard (Celery's): the import fails, as would a changed billiard.
    assert taskwarmup.warm_parent_death_signal() is False
    assert "cannot read the parent-death signal" in caplog.text
