"""Imported first by the warm fork server (`warm.ENGINE_PRELOAD`): Ctrl-C while it starts ends
it quietly.

Ctrl-C at the service's terminal sends SIGINT to the whole process group, the fork server
included. For the seconds it spends importing the engine, Python's default handler would
interrupt that import and print a KeyboardInterrupt traceback under the service's clean
shutdown. The handler installed here ends the fork server at once and silently instead (the
service sees it gone and is stopping anyway). Once its imports are done, the fork server
ignores SIGINT (multiprocessing's own rule) and gives the processes it forks the handler it
replaced, this one: in any process but the fork server it does what Python's default does.
"""

from __future__ import annotations

import os
import signal
from types import FrameType

#: Exit status of a process ended by SIGINT, as a shell reports it.
SIGINT_EXIT_STATUS = 128 + signal.SIGINT

_fork_server_pid = os.getpid()


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    if os.getpid() == _fork_server_pid:  # still importing: after that it ignores SIGINT
        os._exit(SIGINT_EXIT_STATUS)
    signal.default_int_handler(signum, frame)


signal.signal(signal.SIGINT, _on_sigint)
