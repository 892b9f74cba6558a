"""CUDA paths (run with `nox -s cuda` on a GPU machine): every rule trains on the device,
and the CUDA allocator peak is measured."""
import pytest

from llsbench.config import RunConfig
from llsbench.method_registry import METHODS
from llsbench.trainer import Trainer

pytestmark = pytest.mark.cuda


@pytest.mark.parametrize("method", METHODS.names())
def test_every_rule_trains_on_cuda(method):
    model = "pepita-fc" if method == "pepita" else "smallconv"
    config = RunConfig(method=method, model=model, dataset="synthetic", epochs=1, batch_size=64, device="cuda")
    trainer = Trainer(config, progress=False)
    assert next(trainer.model.parameters()).is_cuda
    result = trainer.fit()
    assert result.status == "finished" and result.summary["final_test_acc"] > 0
