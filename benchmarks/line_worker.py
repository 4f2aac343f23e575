"""A child process spoken to in JSON lines with a deadline per reply (shared by fuzz_media.py and
bad_input_corpus.py). The child runs in its own session, so a hang is ended by killing its process group."""

import contextlib
import json
import os
import select
import signal
import subprocess
import time


class LineWorker:
    def __init__(self, log):
        self.log = log  # binary file that receives the child's stderr
        self.proc: subprocess.Popen | None = None
        self.buffer = b""

    def spawn(self, argv: list[str], env: dict, ready_timeout: float, failure: str) -> None:
        """Start the child and wait for its ``{"ready": true}`` line; RuntimeError(failure) if it does not come."""
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, env=env,
                                     start_new_session=True)
        self.buffer = b""
        if (self.read(ready_timeout) or {}).get("ready") is not True:
            self.stop()
            raise RuntimeError(failure)

    def send(self, request: dict) -> None:
        self.proc.stdin.write((json.dumps(request) + "\n").encode())
        self.proc.stdin.flush()

    def read(self, timeout: float) -> dict | None:
        """Next reply; None on timeout; ``{"exit_code": code}`` when the child died (it is then reaped)."""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            if select.select([fd], [], [], remaining)[0]:
                chunk = os.read(fd, 65536)
                if not chunk:
                    code = self.proc.wait()
                    self.proc = None
                    return {"exit_code": code}
                self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def stop(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            self.proc = None
