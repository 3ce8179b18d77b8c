"""Second-order trainers: Newton, nonlinear CG and BFGS against closed forms, SciPy and scikit-learn."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from torch import Tensor, nn

from trainlab.core.budget import Budget
from trainlab.trainers.callbacks import Callback, TrainState
from trainlab.core.config import ConfigError
from trainlab.data.task import Split, Task
from trainlab.losses import CrossEntropy, Loss, get_loss
from trainlab.models import build_model
from trainlab.core.seeding import torch_generator
from trainlab.trainers import TRAINERS, make_trainer
from trainlab.trainers.second_order import FlatObjective, damped_newton_direction


def _task(x: np.ndarray, y: np.ndarray, kind: str = "regression", n_outputs: int = 1) -> Task:
    """A task whose validation split is the training split, so the selected model is the best on train."""
    xt = torch.tensor(x, dtype=torch.float32)
    yt = torch.tensor(y, dtype=torch.float32).reshape(len(y), -1) if kind == "regression" else torch.tensor(y)
    split = Split(xt, yt)
    loss, metric = ("mse", "r2") if kind == "regression" else ("cross_entropy", "accuracy")
    return Task("toy", kind, split, split, split, n_outputs, loss, metric)  # type: ignore[arg-type]


def _least_squares(n: int = 120, d: int = 5) -> tuple[Task, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, d))
    y = x @ rng.normal(size=d) + 0.3 + 0.5 * rng.normal(size=n)
    return _task(x, y), x, y


def _blobs(n: int = 300) -> tuple[Task, np.ndarray, np.ndarray]:
    """Three overlapping Gaussian classes in 2-D (not separable, so the logistic MLE exists)."""
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, size=n)
    centres = np.array([[0.0, 0.0], [1.5, 0.5], [0.5, 1.5]])
    x = centres[y] + rng.normal(size=(n, 2))
    return _task(x, y, "classification", 3), x, y


class Rosenbrock(nn.Module):
    """Outputs (1 − a, 10(b − a²)) for every sample: with MSE against zero targets the loss is
    Rosenbrock's function (1 − a)² + 100(b − a²)², minimum 0 at (1, 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.tensor([-1.2, 1.0]))

    def forward(self, x: Tensor) -> Tensor:
        a, b = self.theta[0], self.theta[1]
        row = torch.stack([1 - a, 10 * (b - a**2)])
        return row.expand(len(x), 2) + 0 * x[:, :1]


class LastWeights(Callback):
    """Keeps a copy of the weights after every epoch."""

    def on_epoch_end(self, state: TrainState) -> None:
        self.state = copy.deepcopy(state.model.state_dict())


def _linear(d_in: int, d_out: int, seed: int = 0) -> nn.Linear:
    model = nn.Linear(d_in, d_out)
    gen = torch_generator(seed, "test")
    with torch.no_grad():
        model.weight.normal_(0, 0.5, generator=gen)
        model.bias.zero_()
    return model


def test_registered_and_options_validated() -> None:
    assert {"newton", "cg", "bfgs"} <= set(TRAINERS.names())
    with pytest.raises(ConfigError, match=r"trainer\.newton\.damping: got -1"):
        make_trainer("newton", damping=-1)
    with pytest.raises(ConfigError, match=r"trainer\.newton\.line_search: got 'wolfe'; allowed: one of armijo, none"):
        make_trainer("newton", line_search="wolfe")
    with pytest.raises(ConfigError, match=r"trainer\.cg\.lr: .*an option among"):
        make_trainer("cg", lr=0.1)
    with pytest.raises(ConfigError, match=r"trainer\.bfgs\.dtype: got 'float16'"):
        make_trainer("bfgs", dtype="float16")
    assert make_trainer("bfgs").describe()["max_params"] == 10_000


def test_newton_solves_least_squares_in_one_step() -> None:
    task, x, y = _least_squares()
    model = _linear(5, 1)
    result = make_trainer("newton", damping=0.0).fit(model, task, Budget(epochs=1), seed=0)
    design = np.c_[x, np.ones(len(x))]
    solution, residual, *_ = np.linalg.lstsq(design, y, rcond=None)
    got = np.r_[model.weight.detach().numpy().ravel(), model.bias.detach().numpy()]
    np.testing.assert_allclose(got, solution, atol=1e-5)
    assert result.status == "ok" and result.best_epoch == 1
    assert result.history[1]["train_loss"] == pytest.approx(residual[0] / len(x), rel=1e-5)
    # one gradient + D = 6 Hessian-vector products + one Armijo probe, over N = 120 samples
    assert result.spending.forward_samples == 120 * (1 + 6) + 120
    assert result.spending.backward_samples == 120 * (1 + 6)
    assert result.spending.steps == 1


def test_newton_stops_when_converged() -> None:
    task, *_ = _least_squares()
    result = make_trainer("newton", damping=0.0, gtol=1e-6).fit(_linear(5, 1), task, Budget(epochs=10), seed=0)
    assert result.spending.steps == 1 and result.spending.epochs == 1
    assert result.message.startswith("converged")


def test_hessian_matches_finite_differences_with_batch_norm() -> None:
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(40, 3)), rng.integers(0, 2, size=40)
    task = _task(x, y, "classification", 2)
    model = build_model("mlp1", (3,), 2, generator=torch_generator(0, "init")).double()
    task.train = Split(task.train.x.double(), task.train.y)
    objective = FlatObjective(model, task.train, CrossEntropy(), torch.float64)
    theta = objective.get()
    _, grad, hessian = objective.value_grad_hessian(theta, chunk_size=7)

    def plain_gradient(t: Tensor) -> Tensor:
        """Gradient by ordinary autograd on a copy of the model in training mode (batch statistics)."""
        clone = copy.deepcopy(model).train()
        torch.nn.utils.vector_to_parameters(t, clone.parameters())
        out = nn.functional.cross_entropy(clone(task.train.x), task.train.y)
        return torch.cat([g.reshape(-1) for g in torch.autograd.grad(out, list(clone.parameters()))])

    np.testing.assert_allclose(grad.numpy(), plain_gradient(theta).numpy(), atol=1e-10)
    eps = 1e-5
    basis = torch.eye(len(theta), dtype=torch.float64)
    columns = [(plain_gradient(theta + eps * e) - plain_gradient(theta - eps * e)) / (2 * eps) for e in basis]
    np.testing.assert_allclose(hessian.numpy(), torch.stack(columns, 1).numpy(), atol=1e-6)
    np.testing.assert_allclose(hessian.numpy(), hessian.numpy().T, atol=1e-10)


def test_damped_direction_raises_damping_until_positive_definite() -> None:
    hessian = torch.diag(torch.tensor([2.0, -1.0], dtype=torch.float64))
    grad = torch.tensor([1.0, 1.0], dtype=torch.float64)
    direction, lam = damped_newton_direction(hessian, grad, 0.0)
    assert lam > 1.0
    np.testing.assert_allclose(direction.numpy(), -np.linalg.solve(hessian.numpy() + lam * np.eye(2), grad.numpy()))


@pytest.mark.parametrize("name", ["cg", "bfgs", "newton"])
def test_logistic_regression_matches_sklearn(name: str) -> None:
    task, x, y = _blobs()
    model, last = _linear(2, 3), LastWeights()
    options = {} if name == "newton" else {"gtol": 1e-9}
    result = make_trainer(name, **options).fit(model, task, Budget(epochs=200), seed=0, callbacks=[last])
    reference = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(x, y)  # no penalty
    best = log_loss(y, reference.predict_proba(x))
    assert result.status == "ok"
    assert result.final["train_loss"] == pytest.approx(best, abs=1e-6)
    model.load_state_dict(last.state)  # the last iterate (the selected one can be an equally good earlier one)
    with torch.no_grad():
        probs = torch.softmax(model(task.train.x), 1).numpy()
    np.testing.assert_allclose(probs, reference.predict_proba(x), atol=2e-5)


@pytest.mark.parametrize("name", ["cg", "bfgs"])
def test_rosenbrock_minimum(name: str) -> None:
    task = _task(np.zeros((4, 1)), np.zeros((4, 2)), n_outputs=2)
    model = Rosenbrock()
    result = make_trainer(name, gtol=1e-8).fit(model, task, Budget(epochs=2_000), seed=0)
    np.testing.assert_allclose(model.theta.detach().numpy(), [1.0, 1.0], atol=1e-4)
    assert result.final["train_loss"] < 1e-8
    assert result.history[0]["train_loss"] == pytest.approx(24.2)  # f(-1.2, 1)
    assert result.spending.forward_samples == result.spending.backward_samples  # fun always returns the gradient


def test_budget_limits_are_exact() -> None:
    task = _task(np.zeros((4, 1)), np.zeros((4, 2)), n_outputs=2)
    for name in ("cg", "bfgs", "newton"):
        result = make_trainer(name).fit(Rosenbrock(), task, Budget(epochs=3), seed=0)
        assert result.spending.epochs == 3 and result.spending.steps == 3 and len(result.history) == 4
    result = make_trainer("bfgs").fit(Rosenbrock(), task, Budget(sample_evals=80), seed=0)
    assert result.spending.sample_evals >= 80
    assert result.spending.steps < 20


def test_batch_norm_running_stats_are_full_batch_statistics() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(2.0, 3.0, size=(60, 4)), rng.integers(0, 2, size=60)
    task = _task(x, y, "classification", 2)
    model = build_model("mlp1", (4,), 2, dropout=0.5, generator=torch_generator(0, "init"))
    result = make_trainer("newton").fit(model, task, Budget(epochs=2), seed=0)
    assert result.status == "ok"
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    first_bn = model[0]
    np.testing.assert_allclose(first_bn.running_mean.numpy(), x.mean(0), rtol=1e-5)
    np.testing.assert_allclose(first_bn.running_var.numpy(), x.var(0, ddof=0), rtol=1e-4)
    # the monitored eval-mode model computes the objective: torch's training-mode batch norm, dropout off
    oracle = copy.deepcopy(model).eval()
    for m in oracle.modules():
        if isinstance(m, nn.BatchNorm1d):
            m.train()
    with torch.no_grad():
        objective = nn.functional.cross_entropy(oracle(task.train.x), task.train.y).item()
        monitored = nn.functional.cross_entropy(model.eval()(task.train.x), task.train.y).item()
    assert monitored == pytest.approx(objective, rel=1e-5)
    # spending: per iteration gradient + D HVPs, probes, and one refresh pass
    d = sum(p.numel() for p in model.parameters())
    assert result.spending.backward_samples == 2 * 60 * (1 + d)
    assert result.spending.forward_samples >= 2 * 60 * (1 + d + 1 + 1)


def test_too_large_model_raises_with_size_and_limit() -> None:
    model = build_model("mlp2", (30,), 2)
    with pytest.raises(ConfigError, match=r"model: got '6,462 trainable parameters'.*max_params=5,000.*'newton'"):
        make_trainer("newton").fit(model, _least_squares(d=30)[0], Budget(epochs=1), seed=0)
    with pytest.raises(ConfigError, match=r"max_params=100 for trainer 'cg'"):
        make_trainer("cg", max_params=100).fit(model, _least_squares(d=30)[0], Budget(epochs=1), seed=0)


class _Drifting(Loss):
    name = "drifting"

    def per_sample(self, outputs: Tensor, targets: Tensor, step: int = 0) -> Tensor:
        return (1 + step) * ((outputs - targets) ** 2).sum(-1)

    def static(self) -> Loss:
        return get_loss("mse")


def test_time_dependent_loss_rejected_by_line_search_methods() -> None:
    task, *_ = _least_squares()
    with pytest.raises(ConfigError, match=r"loss: got 'drifting'; allowed: a static loss"):
        make_trainer("bfgs").fit(_linear(5, 1), task, Budget(epochs=1), seed=0, loss=_Drifting())


def test_deterministic() -> None:
    task, *_ = _blobs(90)
    runs = [make_trainer("newton").fit(_linear(2, 3), task, Budget(epochs=3), seed=0) for _ in range(2)]
    assert [r["train_loss"] for r in runs[0].history] == [r["train_loss"] for r in runs[1].history]


class _ScriptedMinimize:
    """Stands in for ``scipy.optimize.minimize``: each call reports ``plan[k]`` iterations, each a small
    step along −gradient, then ends with a line-search failure, except the last planned call, which
    converges. Records every call's starting point."""

    def __init__(self, plan: list[int]):
        self.plan = plan
        self.starts: list[np.ndarray] = []

    def __call__(self, fun, x0, jac, method, callback, options):  # type: ignore[no-untyped-def]
        import scipy.optimize

        call = len(self.starts)
        self.starts.append(np.array(x0))
        x = np.array(x0)
        for _ in range(self.plan[call]):
            value, grad = fun(x)
            x = x - 0.05 * grad
            callback(scipy.optimize.OptimizeResult(x=x, fun=fun(x)[0]))
        last = call == len(self.plan) - 1
        message = "Optimization terminated successfully." if last else "Desired error not necessarily achieved due to precision loss."
        return scipy.optimize.OptimizeResult(x=x, fun=fun(x)[0], success=last, nit=self.plan[call], message=message)


@pytest.mark.parametrize("restarts", [0, 1, 3])
def test_restarts_continue_from_the_current_iterate_after_a_line_search_failure(
    monkeypatch: pytest.MonkeyPatch, restarts: int
) -> None:
    from trainlab.trainers.second_order import ConjugateGradient

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 2))
    task = _task(x, (np.sin(2 * x[:, 0]) + x[:, 1] > 0).astype(np.int64), "classification", 2)
    histories = {}
    for allowed in (0, restarts):
        scripted = _ScriptedMinimize([3, 2, 2, 4])
        monkeypatch.setattr(ConjugateGradient, "minimize", staticmethod(scripted))
        model = build_model("spiral-mlp", (2,), 2, width=6, generator=torch_generator(1, "init"))
        result = make_trainer("cg", restarts=allowed).fit(model, task, Budget(epochs=500), seed=0)
        calls = min(allowed + 1, len(scripted.plan))
        assert len(scripted.starts) == calls  # one SciPy call per allowed restart, no more
        assert result.spending.epochs == sum(scripted.plan[:calls])  # every reported iteration is an epoch
        if allowed:
            assert f"({calls - 1} restarts)" in result.message
        else:
            assert "precision loss" in result.message
        histories[allowed] = [r["train_loss"] for r in result.history]
    plain, restarted = histories[0], histories[restarts]
    assert restarted[: len(plain)] == plain  # restarting never changes what was already recorded
    with pytest.raises(ConfigError, match=r"trainer\.cg\.restarts: got -1"):
        make_trainer("cg", restarts=-1)


def test_restarts_start_from_the_last_reported_iterate(monkeypatch: pytest.MonkeyPatch) -> None:
    from trainlab.trainers.second_order import ConjugateGradient

    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 2))
    task = _task(x, (x[:, 0] > 0).astype(np.int64), "classification", 2)
    scripted = _ScriptedMinimize([2, 3])
    reported: list[np.ndarray] = []
    inner = scripted.__call__

    def spy(fun, x0, jac, method, callback, options):  # type: ignore[no-untyped-def]
        def record(intermediate_result):  # type: ignore[no-untyped-def]
            reported.append(np.array(intermediate_result.x))
            callback(intermediate_result)

        return inner(fun, x0, jac, method, record, options)

    monkeypatch.setattr(ConjugateGradient, "minimize", staticmethod(spy))
    model = build_model("spiral-mlp", (2,), 2, width=4, generator=torch_generator(2, "init"))
    make_trainer("cg", restarts=2).fit(model, task, Budget(epochs=100), seed=0)
    # the second call starts at the first call's last iterate (as stored in the float32 model)
    np.testing.assert_allclose(scripted.starts[1], reported[1], rtol=1e-6, atol=1e-7)
    assert not np.allclose(scripted.starts[1], scripted.starts[0])


def test_frozen_parameters_stay_fixed_and_are_not_counted() -> None:
    task, x, y = _least_squares()
    model = _linear(5, 1)
    model.bias.requires_grad_(False)
    with torch.no_grad():
        model.bias.fill_(2.0)
    result = make_trainer("newton", damping=0.0).fit(model, task, Budget(epochs=1), seed=0)
    solution = np.linalg.lstsq(x, y - 2.0, rcond=None)[0]  # least squares with the intercept fixed at 2
    np.testing.assert_allclose(model.weight.detach().numpy().ravel(), solution, atol=1e-5)
    assert model.bias.item() == 2.0
    assert result.spending.backward_samples == 120 * (1 + 5)
