"""Optional per-network operation log (off by default, never stdout).

Enabled by the config keys ``logFile`` / ``logLevel`` (Multus spelling) or
the environment variables PYCNI_LOG_FILE / PYCNI_LOG_LEVEL (the config
wins). Levels: ``error`` logs failed operations only; ``info`` (default,
also ``verbose``) logs one line per operation; ``debug`` adds the config
and the result. One line per operation:

  2026-11-25T03:50:01.123Z loopback ADD net=mynet cid=abc ifname=eth0 ok 3.1ms pid=4242
"""

import json
import os
import time

LEVELS = {"panic": 0, "error": 0, "info": 1, "verbose": 1, "debug": 2}


class OperationLog:
    def __init__(self, path: str, level: str, started: float | None = None):
        self.path = path
        self.level = LEVELS.get((level or "info").lower(), 1)
        self.started = time.perf_counter() if started is None else started

    @classmethod
    def from_config(cls, config: dict | None, env,
                    started: float | None = None) -> "OperationLog | None":
        config = config or {}
        path = _get(config, "logFile") or env.get("PYCNI_LOG_FILE", "")
        if not path:
            return None
        level = _get(config, "logLevel") or env.get("PYCNI_LOG_LEVEL", "")
        return cls(path, level, started)

    def finish(self, plugin: str, command: str, net: str, cid: str, ifname: str,
               error=None, config=None, result=None) -> None:
        if error is None and self.level < 1:
            return
        elapsed = (time.perf_counter() - self.started) * 1000
        now = time.time()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + \
            f".{int(now * 1000) % 1000:03d}Z"
        outcome = "ok" if error is None else \
            f"error code={error.code} msg={json.dumps(str(error))}"
        line = (f"{stamp} {plugin} {command} net={net or '-'} cid={cid or '-'} "
                f"ifname={ifname or '-'} {outcome} {elapsed:.1f}ms pid={os.getpid()}")
        if self.level >= 2:
            if config is not None:
                line += f" config={json.dumps(config, separators=(',', ':'))}"
            if result is not None:
                line += f" result={json.dumps(result, separators=(',', ':'))}"
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
                         0o600)
            try:
                os.write(fd, (line + "\n").encode())
            finally:
                os.close(fd)
        except OSError as exc:
            os.write(2, f"pycni: cannot write log {self.path}: {exc}\n".encode())


def _get(config: dict, name: str) -> str:
    from .decode import lookup
    value = lookup(config, name, "")
    return value if isinstance(value, str) else ""
