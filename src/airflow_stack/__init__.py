"""airflow-stack: the entrypoint and operational logic of the Airflow image.

Modules, one concern each:
    cli          command-line dispatch (`airflow-stack run COMPONENT`, pass-through to `airflow`)
    components   what each Airflow component runs and what it needs before it starts
    settings     the configuration contract: required settings, their sources, *_FILE twins
    waiting      bounded waits for PostgreSQL and Redis
    preflight    the checks a component passes before it is exec'd
    initdb       the one-shot `init` job: migrate the metadata DB, create the admin user
    healthcheck  cheap container health probes that do not import Airflow
    envfile      `make init`: writes .env once with generated secrets (host side, stdlib only)
    stackwait    `make up`: waits until every compose service is healthy (host side, stdlib only)
"""

__version__ = "0.1.0"
