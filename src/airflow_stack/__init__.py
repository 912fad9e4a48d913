"""airflow-stack: the entrypoint and operational logic of the Airflow image.

Modules, one concern each:
    cli           command-line dispatch (`airflow-stack run COMPONENT`, pass-through to `airflow`)
    components    what each Airflow component runs and what it needs before it starts
    settings      the configuration contract: required settings, their sources, *_FILE twins
    preflight     the checks a component passes before it is exec'd
    waiting       bounded waits for PostgreSQL and Redis
    fingerprints  fingerprints of the shared secrets and how two sets are compared
    metadb        Airflow-free access to the metadata DB (heartbeats, recorded fingerprints)
    plugin        the Airflow plugin: the api-server publishes its fingerprints for workers
    initdb        the one-shot `init` job: record fingerprints, migrate, create the admin user
    rotation      the in-image steps of `make rotate-fernet-key`
    bootstrap     the one-shot `bootstrap` job: connections, variables and pools from a file
    s3logs        S3 remote task logs: switched on by one setting, probed at start
    loggroom      local log retention (`groom-logs`)
    dagsync       `dag-sync`: poll the artifact source, verify, extract, validate, switch; rollback
    dagsource     where DAG artifacts come from: HTTP(S) or S3, conditional requests, checksums
    archive       safe extraction of tar.gz and zip artifacts, with limits
    dagvalidate   import a release's DAGs with Airflow's DagBag in a forked child before it goes live
    releases      the release store on shared storage, the atomic switch, and the bundle settings
    dagbundle     the versioned Airflow DAG bundle that reads the release store
    dagpublish    publish a DAG folder as a versioned artifact (host side, stdlib only)
    healthcheck   cheap container health probes that do not import Airflow
    monitor       `monitor`: queue depth, desired workers and heartbeat ages to logs, Prometheus, CloudWatch
    hostinit      `make init` and the .env edits of rotation (host side, stdlib only)
    stackwait     `make up`: waits until every compose service is ready (host side, stdlib only)
"""

__version__ = "0.1.0"
