"""airflow-stack: the entrypoint and operational logic of the Airflow image.

One concern per module; the subpackages follow the architecture (docs/development.md has
the picture). A unit test keeps this map complete.

    cli                      the image's entrypoint: `airflow-stack COMMAND` (argparse)
    core/                    what everything else reads; standard library only
      settings               the settings registry: every variable, its type, default, *_FILE twin
      components             the component table: command, checks, probe, log servers per component
      errors                 StackError (problem, setting, fix), progress lines, links into docs/
      metadb                 the metadata DB without Airflow: heartbeats, task counts and states, fingerprints
      privileges             dropping root at start; the uid of DAG validation's sandbox
      pins                   checks that the Airflow internals a wrapper relies on are still there
      sharedheap             a process's objects made immortal before it forks: children copy no pages for their counts
    checks/                  before and while a component runs
      preflight              the checks a component passes before it starts
      waiting                bounded waits for PostgreSQL, Redis and the execution API
      fingerprints           fingerprints of the shared secrets and how two sets are compared
      migrations             the metadata DB at the image's migration heads: one query in place of Airflow's check
      healthcheck            cheap container health probes that do not import Airflow
    jobs/                    one-shot jobs
      db_migrate             record fingerprints, migrate the metadata DB, create the admin user
      bootstrap              connections, variables and pools from a file
      rotation               the in-image steps of `make rotate-fernet-key`
      upgrade_check          `make upgrade-check`'s in-image step: migrate a database copy, then dags-check
    dags/                    DAG deployment and DAG authors' checks
      dagcheck               `make dags-check`: import a DAG folder; import errors, duplicates, empty DAGs, parse times
      dagtest                `make dags-test`: the DAG repository's pytest suite with a throwaway database
      dagsync                the dag-sync component: poll, verify, extract, validate, switch; rollback
      dagsource              where artifacts come from: HTTP(S) or S3, conditional requests, checksums
      archive                safe extraction of tar.gz and zip artifacts, with limits
      dagvalidate            import a release's DAGs in a sandbox (own uid, no credentials) before it goes live
      releases               the release store on shared storage and its atomic switch
      dagbundle              the versioned Airflow DAG bundle that reads the release store
      parsing                where the dag-processor finds DAGs (folder or releases) and how soon
    worker/                  inside the Celery worker
      celeryconfig           Airflow's Celery config plus this package's worker hooks
      celery_hooks           the worker's start-up hooks: protection, drain, warm-up, DAG cache, task supervisor, logs
      taskwarmup             task modules, the API client's TLS context, cffi's parser: made once, before the pool forks
      dagcache               each DAG file parsed once per pool process, inherited by its tasks
      taskexit               the task supervisor notices its task process's exit at once
      firstheartbeat         the supervisor's first heartbeat one interval after the task's start, not at once
      scaleprotect           ECS task scale-in protection while the worker holds tasks
      deploydrain            a worker left behind by an ECS deployment leaves its queue and finishes its tasks
      periodic               the background check loop scaleprotect and deploydrain run
    scheduler/               inside the scheduler's process
      loopwait               while tasks are in flight, the scheduler looks again soon after it queued or saw tasks end
      resultsessions         the Celery executor reads task results over a pooled connection, not a new one per read
    dagprocessor/            inside the dag-processor's process
      lazyclient             its in-process execution API built when a DAG file first asks it something
    ops/                     operations
      monitor                queue depth, desired workers, heartbeats to logs, Prometheus, CloudWatch, ECS
      requeue                a dead worker's taken, unstarted messages back to their queue
      lostqueued             queued tasks whose message the broker lost, handed back to the scheduler
      scaler                 the ECS worker services' desired count from the queue (the `ecs` sink)
      loggroom               the log-groomer component: local log retention
      s3logs                 S3 task logs: switched on by one setting, probed at start
      logfiles               a log file that cannot be written is reported, not fatal (worker, triggerer, dag-processor)
      forkfreeze             the triggerer's runner shares its parent's heap (immortal, and frozen for the collector)
      lazylogserver          Airflow's log server imported only by a component that starts it
    apiserver/               inside the api-server
      plugin                 the Airflow plugin: mounts the fingerprint endpoint, installs sharedlogs
      fingerprint_api        GET /airflow-stack/fingerprints for workers
      sharedlogs             with the log servers off, task logs read from the shared folder only
    image/                   run by the image build before the package exists; standard library only
      userdeps               your requirements.txt (held to the lock) and packages.txt
      airflowpatches         the image's patches to installed source: libcst, aiohttp, the execution API on first use
    host/                    run on the host as `PYTHONPATH=src python3 -m ...`; standard library only
      envfile                `make secrets`: .env with generated secrets, and the rotation's .env edits
      stackwait              `make up`: wait until every compose service is ready
      dagpublish             `make dag-artifact`: publish a DAG folder as a versioned artifact
      awsdeploy              `make -C deploy/aws`: stack parameters and the fernet key secret
      ecsrun                 `make -C deploy/aws db-migrate|bootstrap|airflow`: one-off tasks, pre-migration snapshot
      rdsca                  `make -C deploy/aws rds-ca`: Amazon RDS's CA bundle for the image (sslmode=verify-full)
      imagepush              `make push`: the image for one CPU, or for several under one tag (a manifest list)
      overrides              `make up`: your Airflow options (config/airflow.env) reach every Airflow container
      database               `make db-backup`, `db-restore`, `upgrade-check`: the metadata database from the host
"""

__version__ = "0.1.0"
