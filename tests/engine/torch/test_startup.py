"""engine/torch/startup: the deferred torch module loads when used, with the registrations an
eager import makes; LeNet still trains as real Caffe did with it deferred; the collector is
paused while setting up and the set-up frozen. Each case runs in a fresh interpreter (torch is
already imported here, so nothing could be deferred in this process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
DEFERRED = "torch._meta_registrations"


def _python(code: str, env: dict[str, str] | None = None, timeout: int = 300):
    """Run `code` in a fresh interpreter (this checkout first on the path); its result."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **(env or {})}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


REGISTRATIONS = """
import json
import torch._decomp
ops = lambda table: {op.name() for op in table if isinstance(op, torch._ops.OpOverload)}
table = sorted(ops(torch._decomp.meta_table))
names = sorted(set().union(*map(ops, torch._decomp.global_decomposition_table.values())))
has_meta = [torch._C._dispatch_has_kernel_for_dispatch_key(n, "Meta") for n in names]
print("REGISTRATIONS " + json.dumps([table, names, has_meta]))
"""


def _registrations(stdout: str) -> list:
    line = next(x for x in stdout.splitlines() if x.startswith("REGISTRATIONS "))
    return json.loads(line.split(" ", 1)[1])


def test_torch_export_loads_the_deferred_module_and_works():
    """Deferred at import; torch.export (which imports torch._dynamo) loads it first, the
    exported program computes what the module does, and meta tensors work afterwards."""
    done = _python(f"""
        from elasticthought.engine.torch import startup
        assert startup.defer_torch_modules()
        import torch
        assert startup.deferred_modules() == [{DEFERRED!r}], startup.deferred_modules()
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())
        x = torch.randn(5, 4)
        exported = torch.export.export(model, (x,))
        assert startup.deferred_modules() == []
        assert torch.equal(exported.module()(x), model(x))
        meta = torch.nn.functional.conv2d(
            torch.empty(2, 3, 8, 8, device="meta"), torch.empty(4, 3, 3, 3, device="meta"))
        assert meta.shape == (2, 4, 6, 6) and meta.device.type == "meta"
        print("OK")
    """)
    assert "OK" in done.stdout


def test_reading_an_attribute_loads_it_with_the_eager_registrations():
    """Binding the module does not load it, reading an attribute does; the Meta kernels and
    decomposition tables then equal those of a plain (eager) torch import."""
    lazy = _python(
        textwrap.dedent(f"""
        from elasticthought.engine.torch import startup
        assert startup.defer_torch_modules()
        import torch
        import torch._meta_registrations as registrations
        assert startup.deferred_modules() == [{DEFERRED!r}]
        assert callable(registrations.activate_meta)
        assert startup.deferred_modules() == []
        """)
        + REGISTRATIONS
    )
    eager = _python("import torch\n" + REGISTRATIONS)
    mine, theirs = _registrations(lazy.stdout), _registrations(eager.stdout)
    assert len(theirs[0]) > 100 and any(theirs[2])
    assert mine == theirs


def test_switched_off_everything_is_eager():
    done = _python(
        """
        from elasticthought.engine.torch import startup
        assert not startup.defer_torch_modules()
        import torch
        assert startup.deferred_modules() == []
        assert "activate_meta" in vars(torch._meta_registrations)
        print("OK")
        """,
        env={"ELASTICTHOUGHT_LAZY_TORCH": "0"},
    )
    assert "OK" in done.stdout


def test_setting_up_pauses_the_collector_and_freezes_what_it_built():
    code = """
        import gc
        from elasticthought.engine.torch import startup
        with startup.setting_up():
            inside = gc.isenabled()
            kept = [[i] for i in range(1000)]
        print(inside, gc.isenabled(), gc.get_freeze_count() >= 1000)
        gc.unfreeze()
        try:
            with startup.setting_up():
                raise KeyError
        except KeyError:
            pass
        print(gc.isenabled(), gc.get_freeze_count())
    """
    assert _python(code).stdout.split() == ["False", "True", "True", "True", "0"]
    off = _python(code, env={"ELASTICTHOUGHT_GC_TUNING": "0"}).stdout.split()
    assert off == ["True", "True", "False", "True", "0"]


def test_lenet_golden_training_with_the_module_deferred():
    """The golden LeNet run (`elasticthought train`, compared with real Caffe's log and
    weights) passes with torch's Meta registrations deferred all through it."""
    done = _python(
        """
        import sys
        from elasticthought.engine.torch import startup
        assert startup.defer_torch_modules()
        import pytest
        code = pytest.main(["-q", "-p", "no:cacheprovider",
                            "tests/engine/torch/test_train_lenet.py::test_lenet_training_matches_caffe"])
        print("STILL DEFERRED", startup.deferred_modules())
        sys.exit(int(code))
        """,
        timeout=600,
    )
    assert "1 passed" in done.stdout
    assert f"STILL DEFERRED [{DEFERRED!r}]" in done.stdout
