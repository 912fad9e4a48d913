from airflow_stack.worker import taskwarmup


def test_modules_are_imported_and_a_missing_one_is_reported_not_raised(caplog):
    missing = taskwarmup.import_task_modules(("json", "airflow_stack_no_such_module"))
    assert missing == ["airflow_stack_no_such_module"]
    assert "cannot import airflow_stack_no_such_module" in caplog.text
