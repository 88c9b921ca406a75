"""Run a command (``python -m speechexp.<module> args``, ``python scripts/<name>.py args`` or
``python -c CODE args``) in a process forked from one that has already imported torch, Lightning
and the commands: a fresh interpreter spends about 7 s importing them before the command starts,
longer than most commands under test run.

The forking process is multiprocessing's fork server, started once per pytest worker with the
worker's environment: a command whose environment differs in what an interpreter reads as it
starts (``PYTHONPATH``, thread counts) needs a fresh interpreter (``tests.conftest.run_cli``
chooses). Each command gets a process of its own: its pid, exit status, signals and working
folder, its stdout and stderr written to files at the descriptor level (so C code's output is
kept too), and at its end what the interpreter does as it exits.
"""

from __future__ import annotations

import atexit
import importlib
import multiprocessing
import os
import runpy
import subprocess
import sys
import tempfile
import threading
import traceback
from pathlib import Path

# what the commands import before and while they run, imported once in the fork server
PRELOAD = ["tests.cli_fork", "speechexp.train", "speechexp.evaluate", "speechexp.infer", "speechexp.prepare",
           "speechexp.export", "speechexp.report", "speechexp.compare", "speechexp.plot",
           "speechexp.tasks.separation", "speechexp.tasks.asr_emotion", "matplotlib.pyplot", "librosa"]

_context = None


def fork_server() -> multiprocessing.context.BaseContext:
    """The fork-server context, its modules preloaded (the server starts with the first command)."""
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(PRELOAD)
    return _context


def _exit_status(code: object) -> int:
    """The interpreter's exit status for ``sys.exit(code)`` (any other object is printed, then 1)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _run(target: str, args: list[str], cwd: str, env: dict, stdout: str, stderr: str) -> None:
    """In the forked process: become the command, run in ``cwd`` with ``env``, then exit as the
    interpreter would. ``target`` is a module (``speechexp.train``), a script's path, or ``-c``
    (then ``args[0]`` is the code)."""
    for fd, path in ((1, stdout), (2, stderr)):
        opened = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(opened, fd)
        os.close(opened)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 (the process's own streams)
    sys.stderr = open(2, "w", buffering=1, closefd=False, errors="backslashreplace")  # noqa: SIM115
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    status = 1
    try:
        if target == "-c":  # python -c CODE args: the working folder first on the path
            sys.argv = ["-c", *args[1:]]
            sys.path.insert(0, cwd)
            exec(compile(args[0], "<string>", "exec"), {"__name__": "__main__"})  # noqa: S102 (the test's own code)
            status = 0
        elif target.endswith(".py"):  # python path/to/script.py: the script's folder first on the path
            sys.argv = [target, *args]
            sys.path.insert(0, str(Path(target).resolve().parent))
            runpy.run_path(target, run_name="__main__")
            status = 0
        else:  # python -m module: the working folder first on the path
            sys.path.insert(0, cwd)
            command = importlib.import_module(target)
            sys.argv = [command.__file__, *args]
            status = _exit_status(command.main())
    except SystemExit as exit_:
        status = _exit_status(exit_.code)
    except BaseException:  # noqa: BLE001 (an uncaught exception reads as the interpreter prints it)
        traceback.print_exc()
    finally:
        # what the interpreter does as it exits, which os._exit skips: join the threads still
        # running (an executor's manager, say), then run the exit functions (W&B, loggers)
        threading._shutdown()
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


class ForkedProcess:
    """A started command, used as a :class:`subprocess.Popen` with ``text=True`` and both
    streams piped is: ``pid``, ``poll``, ``send_signal``, ``wait``, ``communicate``, ``returncode``."""

    def __init__(self, target: str, args: list[str], cwd: Path, env: dict):
        self._scratch = tempfile.TemporaryDirectory(prefix="cli-fork-")
        self._out, self._err = Path(self._scratch.name) / "stdout", Path(self._scratch.name) / "stderr"
        self.args = [sys.executable, *([target] if target == "-c" or target.endswith(".py") else ["-m", target]), *args]
        self._process = fork_server().Process(target=_run, args=(target, list(args), str(cwd), env,
                                                                 str(self._out), str(self._err)))
        self._process.start()
        self.pid = self._process.pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        self.returncode = self._process.exitcode
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self._process.kill()

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        if self.poll() is None:
            raise subprocess.TimeoutExpired(self.args, timeout)
        return self.returncode

    def output(self) -> tuple[str, str]:
        """What the command has written to stdout and stderr so far."""
        return tuple(p.read_text(errors="replace") if p.exists() else "" for p in (self._out, self._err))

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        """Wait for the end (killing the command after ``timeout`` s, as ``subprocess.run`` does)
        and return its stdout and stderr."""
        try:
            self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            self.wait()
            raise subprocess.TimeoutExpired(self.args, timeout, *self.output()) from None
        written = self.output()
        self._scratch.cleanup()
        return written


def run_forked(target: str, args: list[str], cwd: Path, env: dict, timeout: float | None) -> subprocess.CompletedProcess:
    """Run the command to its end and capture it as :func:`subprocess.run` would."""
    process = ForkedProcess(target, args, cwd, env)
    stdout, stderr = process.communicate(timeout)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
