import atexit
import os
import shutil
import tempfile

os.environ.setdefault("MUJOCO_GL", "egl")

# One persistent XLA cache for the whole test session (its subprocesses too): the many tiny training runs and
# policies compile the same programs. A fresh folder each session, so nothing stale is ever loaded.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="vla-test-xla-")
    atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
