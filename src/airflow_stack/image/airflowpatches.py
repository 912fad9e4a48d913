"""The image's changes to the installed source of Airflow and its dependencies, applied by the image
build.

Runs inside `docker build` as a plain script, with the venv's interpreter, after the lock is
installed (standard library only):

    airflowpatches.py

Each patch replaces exact text in one installed file and recompiles its bytecode. A patch whose
text is not found exactly once (another Airflow, or a file someone else changed) stops the build,
naming the file and the patch, so that an upgrade never ships a half-applied change: take the
patch out, or write it again for that Airflow.

The patches:

- `lazy-libcst`: the task SDK's decorator module imports libcst (a parser of Python source) when
  it is imported, and every Airflow process imports it through `airflow.sdk.bases.operator`:
  about 10 MiB of memory and 0.1 s of CPU in each. libcst only serves `remove_task_decorator`,
  which rewrites a task's source for the operators that run it in another interpreter
  (`@task.virtualenv`, `@task.external_python`, `@task.docker` ...). With the patch, libcst is
  imported the first time that function runs, in the process that runs such a task; the function
  does what it did.
- `lazy-svcs-aiohttp`: svcs (the service registry of Airflow's execution API) imports its aiohttp
  integration when it is imported, and so aiohttp whenever aiohttp is installed (the HTTP
  provider's async hook needs it). The execution API is a FastAPI app and uses svcs's
  FastAPI integration only; the api-server and the dag-processor (which loads the execution API
  with FAB's security manager) imported aiohttp for nothing: about 7.6 MiB and 85 modules in
  each. With the patch, `svcs.aiohttp` is imported when it is first used (`from svcs import
  aiohttp`, or the `svcs.aiohttp` attribute); a trigger or hook that needs aiohttp imports it
  itself, as before.
- `lazy-execution-api`: Airflow's DAG file processor manager made its in-process execution API
  (FastAPI, Cadwyn, svcs) when it was created; it is now made the first time it is used (a
  cached property instead of an attrs field with a factory), which, with the dag-processor's
  `lazyclient`, is when a DAG file or a callback first asks the API something.
- `lazy-fab-fastapi-app`: FAB's security manager modules imported the api-server's app module
  (and with it the execution API) for its `get_auth_manager`; the dag-processor loads them to
  sync each DAG's permissions. Each module now has a `get_auth_manager` that imports the app
  module on its first call and returns what Airflow's returns. Together with `lazy-execution-api`:
  about 10 MiB less in the dag-processor.
"""

from __future__ import annotations

import py_compile
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Patch:
    name: str
    file: str  # relative to the venv's site-packages
    replacements: tuple[tuple[str, str], ...]  # (exact old text, new text)


_REMOVER = """class _TaskDecoratorRemover(cst.CSTTransformer):
    def __init__(self, task_decorator_name: str) -> None:"""

_LAZY_REMOVER = """@functools.cache
def _task_decorator_remover_class():
    # airflow-stack (image patch lazy-libcst): libcst is imported on first use, not with this module.
    import libcst as cst

    class _TaskDecoratorRemover(cst.CSTTransformer):
        def __init__(self, task_decorator_name: str) -> None:"""

_REMOVER_BODY = """        self.decorators_to_remove: set[str] = {
            "setup",
            "teardown",
            "task.skip_if",
            "task.run_if",
            task_decorator_name.strip("@"),
        }

    def _is_task_decorator(self, decorator_node: cst.Decorator) -> bool:
        decorator_expr = decorator_node.decorator
        if isinstance(decorator_expr, cst.Name):
            return decorator_expr.value in self.decorators_to_remove
        if isinstance(decorator_expr, cst.Attribute) and isinstance(decorator_expr.value, cst.Name):
            return f"{decorator_expr.value.value}.{decorator_expr.attr.value}" in self.decorators_to_remove
        if isinstance(decorator_expr, cst.Call):
            return self._is_task_decorator(cst.Decorator(decorator=decorator_expr.func))
        return False

    def leave_FunctionDef(
        self, original_node: cst.FunctionDef, updated_node: cst.FunctionDef
    ) -> cst.FunctionDef:
        new_decorators = [dec for dec in updated_node.decorators if not self._is_task_decorator(dec)]
        if len(new_decorators) == len(updated_node.decorators):
            return updated_node
        return updated_node.with_changes(decorators=new_decorators)
"""

_USE = """    source_tree = cst.parse_module(python_source)
    modified_tree = source_tree.visit(_TaskDecoratorRemover(task_decorator_name))"""

_LAZY_USE = """    import libcst as cst

    source_tree = cst.parse_module(python_source)
    modified_tree = source_tree.visit(_task_decorator_remover_class()(task_decorator_name))"""


_SVCS_AIOHTTP = """try:
    from . import aiohttp
except ImportError:
    __all__ += ["aiohttp"]
"""

_LAZY_SVCS_AIOHTTP = """# airflow-stack (image patch lazy-svcs-aiohttp): svcs.aiohttp is imported on first use.
def __getattr__(name):
    if name == "aiohttp":
        import importlib

        try:
            return importlib.import_module(f"{__name__}.aiohttp")
        except ImportError as exc:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r} ({exc})") from exc
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
"""


_EAGER_EXECUTION_API = """    _api_server: InProcessExecutionAPI = attrs.field(init=False, factory=_make_execution_api)
    \"""API server to interact with Metadata DB\"""
"""

_LAZY_EXECUTION_API = """    @functools.cached_property
    def _api_server(self) -> InProcessExecutionAPI:
        \"""API server to interact with Metadata DB\"""
        # airflow-stack (image patch lazy-execution-api): made on first use, not with the manager.
        return _make_execution_api()
"""

_FAB_APP_IMPORT = "from airflow.api_fastapi.app import get_auth_manager\n"

_LAZY_FAB_APP_IMPORT = """def get_auth_manager():
    # airflow-stack (image patch lazy-fab-fastapi-app): the api-server's app module is imported on first use.
    from airflow.api_fastapi.app import get_auth_manager

    return get_auth_manager()
"""


def _indented(text: str) -> str:
    """`text` one level (4 spaces) deeper, blank lines left blank."""
    return "".join(f"    {line}" if line.strip() else line for line in text.splitlines(keepends=True))


PATCHES = (
    Patch(
        "lazy-libcst",
        "airflow/sdk/definitions/_internal/decorators.py",
        (
            ("import sys\n\nimport libcst as cst\n", "import functools\nimport sys\n"),
            (
                f"{_REMOVER}\n{_REMOVER_BODY}",
                f"{_LAZY_REMOVER}\n{_indented(_REMOVER_BODY)}\n    return _TaskDecoratorRemover\n",
            ),
            (_USE, _LAZY_USE),
        ),
    ),
    Patch(
        "lazy-svcs-aiohttp",
        "svcs/__init__.py",
        ((_SVCS_AIOHTTP, _LAZY_SVCS_AIOHTTP),),
    ),
    Patch(
        "lazy-execution-api",
        "airflow/dag_processing/manager.py",
        ((_EAGER_EXECUTION_API, _LAZY_EXECUTION_API),),
    ),
    *(
        Patch("lazy-fab-fastapi-app", f"airflow/providers/fab/www/{module}", ((_FAB_APP_IMPORT, _LAZY_FAB_APP_IMPORT),))
        for module in ("security_manager.py", "utils.py")
    ),
)


class PatchFailed(Exception):
    """A patch's text is not in its file exactly once; the message names both and the fix."""


def apply(patch: Patch, site_packages: Path) -> str:
    """Apply `patch` under `site_packages` and recompile the file; returns what it did."""
    path = site_packages / patch.file
    try:
        text = path.read_text()
    except OSError as exc:
        raise PatchFailed(f"image patch {patch.name}: cannot read {path}: {exc}") from None
    for number, (old, new) in enumerate(patch.replacements, 1):
        found = text.count(old)
        if found != 1:
            raise PatchFailed(
                f"image patch {patch.name}: part {number} of {len(patch.replacements)} is in {patch.file} "
                f"{found} times, not once (this Airflow differs); fix: remove the patch from "
                "src/airflow_stack/image/airflowpatches.py, or write it again for this Airflow"
            )
        text = text.replace(old, new)
    path.write_text(text)
    py_compile.compile(str(path), doraise=True)
    return f"image patch {patch.name}: applied to {patch.file}"


def main() -> int:
    site_packages = Path(sysconfig.get_paths()["purelib"])
    try:
        for patch in PATCHES:
            print(apply(patch, site_packages))
    except (PatchFailed, py_compile.PyCompileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
