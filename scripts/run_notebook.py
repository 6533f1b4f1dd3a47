"""Runs one pipeline notebook with papermill and publishes the executed copy only on success.

DVC stages call this instead of papermill directly, so that a stage that fails leaves the
committed executed notebook in ``reports/runs/`` untouched: the notebook runs into a
temporary file beside the destination; on success that file is renamed into place, on failure
it is kept as ``reports/runs/failed/<name>`` (git-ignored) and the error is printed with its path.

The stage's processes die with this runner: papermill runs in its own process group with a
parent-death signal (``PR_SET_PDEATHSIG``: killed when this runner dies, even by ``kill -9``),
SIGTERM / SIGINT / SIGHUP received here are forwarded to that group, and the notebook kernel
(papermill's child) exits when papermill is gone (ipykernel's parent poller). So no orphaned
training keeps writing, or keeps its output folder locked, after the stage was stopped.
A temporary notebook left by a runner that was killed is removed by the next run.

Progress bars redraw their line with carriage returns, hundreds of times per stage; the
published notebook keeps each line as a terminal (and Jupyter) shows it, the text after its last
carriage return (:func:`compact_streams`), so an executed training notebook stays small.

Before the notebook starts, the parameter file it is given (``-p params_file FILE``) is loaded
whole (:func:`lib.stages.check_params`): a bad value in any section is reported in one line
naming its key, and no stage starts.

Usage (the arguments after the output path are papermill's, e.g. ``-p key value``)::

    python scripts/run_notebook.py notebooks/NN-x.ipynb reports/runs/NN-x.ipynb -p params_file params.yaml
"""
from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECK_PARAMS = """import sys
from lib.stages import check_params
try:
    check_params(sys.argv[1])
except (ValueError, KeyError) as e:  # lib.config.ConfigError is a ValueError
    print(f"error: {sys.argv[1]}: {e.args[0] if isinstance(e, KeyError) and e.args else e}", file=sys.stderr)
    sys.exit(2)
"""
PAPERMILL_OPTIONS = ["--cwd", ".", "--log-level", "WARNING", "--progress-bar", "--stderr-file", "/dev/stderr"]
PR_SET_PDEATHSIG = 1  # linux/prctl.h
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _die_with_parent() -> None:
    """``preexec_fn`` of the papermill child: a new process group, SIGKILL when the runner dies."""
    os.setpgid(0, 0)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the forwarded signals still reach the group
        pass


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_temps(dest: Path) -> None:
    """Removes ``.<name>.<pid>.tmp.ipynb`` files beside ``dest`` whose runner is gone."""
    for tmp in dest.parent.glob(f".{dest.name}.*.tmp.ipynb"):
        pid = tmp.name[len(dest.name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            tmp.unlink(missing_ok=True)


def _run(cmd: list[str]) -> int:
    """Runs ``cmd`` in its own process group, forwarding the stop signals to it; its exit code
    (``128 + signal`` when a signal ended it)."""
    proc = subprocess.Popen(cmd, preexec_fn=_die_with_parent)
    previous = {}

    def forward(signum: int, _frame: object) -> None:
        try:
            os.killpg(proc.pid, signum)
        except ProcessLookupError:
            pass

    for sig in FORWARDED:
        previous[sig] = signal.signal(sig, forward)
    try:
        while True:
            try:
                code = proc.wait()
                break
            except InterruptedError:  # pragma: no cover - wait() retries on EINTR itself
                continue
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if proc.poll() is None:  # an exception here: do not leave the group running
            os.killpg(proc.pid, signal.SIGKILL)
    return 128 - code if code < 0 else code


def _params_file(papermill_args: list[str]) -> str | None:
    """The value of ``-p params_file VALUE`` (or ``--parameters``) among papermill's arguments."""
    for i, arg in enumerate(papermill_args[:-2]):
        if arg in ("-p", "--parameters") and papermill_args[i + 1] == "params_file":
            return papermill_args[i + 2]
    return None


def _check_params(params_file: str) -> int:
    """Loads every section of ``params_file`` in a child Python (the project on its path); its exit code."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.call([sys.executable, "-c", CHECK_PARAMS, params_file], env=env)


def _terminal_text(text: str) -> str:
    """``text`` as a terminal shows it: each line reduced to what follows its last carriage
    return (the redraws of a progress bar collapse to the last one); a line that ends in a
    carriage return keeps the text before it."""
    lines = text.split("\n")  # not str.splitlines: it splits at carriage returns too
    return "\n".join(next((p for p in reversed(line.split("\r")) if p), "") for line in lines)


def compact_streams(notebook: Path) -> None:
    """Rewrites ``notebook`` with every cell's consecutive stream outputs of one name merged and
    reduced to their terminal text (:func:`_terminal_text`); other outputs are kept as they are."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    for cell in nb.get("cells", []):
        merged: list[dict] = []
        parts: dict[int, list[str]] = {}  # merged index -> the texts of its stream outputs, joined once (linear time)
        for out in cell.get("outputs", []):
            if (out.get("output_type") == "stream" and merged and merged[-1].get("output_type") == "stream"
                    and merged[-1].get("name") == out.get("name")):
                parts[len(merged) - 1].append("".join(out.get("text", "")))
            else:
                if out.get("output_type") == "stream":
                    parts[len(merged)] = ["".join(out["text"])]
                merged.append(out)
        for i, out in enumerate(merged):
            if out.get("output_type") == "stream":
                text = _terminal_text("".join(parts[i]))
                out = merged[i] = dict(out)
                out["text"] = [line + "\n" for line in text.split("\n")[:-1]] + ([text.rsplit("\n", 1)[-1]] if not text.endswith("\n") else [])
        if "outputs" in cell:
            cell["outputs"] = merged
    notebook.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def main(argv: list[str]) -> int:
    from env_check import missing_packages_message  # beside this script (scripts/), standard library only

    if (missing := missing_packages_message("papermill")) is not None:  # e.g. `.venv/bin/dvc repro` unactivated
        print(missing, file=sys.stderr)
        return 2
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    src, dest, rest = Path(argv[0]), Path(argv[1]), argv[2:]
    if not src.is_file():
        print(f"error: notebook not found: {src}", file=sys.stderr)
        return 2
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        print(f"error: {dest.parent}: cannot create the folder ({e.strerror or e})", file=sys.stderr)
        return 2
    params_file = _params_file(rest)
    if params_file is not None and _check_params(params_file) != 0:
        print(f"error: {src} not run: fix {params_file} first; {dest} was left as it was", file=sys.stderr)
        return 2
    _remove_stale_temps(dest)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp.ipynb")
    papermill = [sys.executable, "-m", "papermill", *PAPERMILL_OPTIONS, str(src), str(tmp), *rest]
    code = _run(papermill)
    if code == 0:
        compact_streams(tmp)
        os.replace(tmp, dest)
        return 0
    failed = dest.parent / "failed" / dest.name
    stopped = f" (stopped by signal {code - 128})" if code > 128 else ""
    if tmp.exists():
        failed.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, failed)
        print(f"error: {src} failed (exit {code}){stopped}; the executed notebook is in {failed}; "
              f"{dest} was left as it was", file=sys.stderr)
    else:
        print(f"error: {src} failed (exit {code}){stopped} before it ran; {dest} was left as it was", file=sys.stderr)
    return code or 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
