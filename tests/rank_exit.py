"""`python tests/rank_exit.py MODULE [ARGS]`: run `python -m MODULE ARGS` as one rank of a torchrun job, then
print the threads the process still has at its very end (Linux /proc), so a test sees what outlived the run.

Gloo's threads (gloo_tcp_loop, pt_gloo_runloop) still running here are torn down during the interpreter's
exit, which now and then aborted a rank ("terminate called without an active exception"): none may be left.
"""
import os
import runpy
import sys


def thread_names() -> list[str]:
    names = []
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/comm") as comm:
                names.append(comm.read().strip())
        except OSError:  # a thread that ended meanwhile
            pass
    return sorted(names)


if __name__ == "__main__":
    module, sys.argv = sys.argv[1], sys.argv[1:]
    sys.path[0] = os.getcwd()  # as `python -m` has it: this script's folder, tests/, holds other `training`s
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:
        code = exc.code
    # One write(2) of the whole line: the ranks share torchrun's stderr pipe, and print()'s separate write
    # of the newline let two ranks' lines run together (a write below PIPE_BUF is never interleaved).
    sys.stderr.flush()
    os.write(2, f"rank {os.environ.get('RANK', '0')} threads at exit: {' '.join(thread_names())}\n".encode())
    sys.exit(code)
