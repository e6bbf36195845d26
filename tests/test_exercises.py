"""The book's exercises: every stub fails its checker, every reference solution passes it.

Exercise cells are found through their cell metadata,
`"exercise": {"checker": "chN.check_x", "answer": "name", "role": "stub" | "solution"}`.
A stub cell is executed on its own, in a fresh namespace (the cells are self-contained by convention), then its
checker is called on the name it defines. A solution cell only calls `show_solution(chapter, answer)`: the
reference solution is the self-contained file `resnet_lab/exercises/solutions/<chapter>_<answer>.py`, executed
the same way. The run_check machinery of resnet_lab.exercises and the specific hints of the chapter checkers are
tested at the end.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import keyword
import re
from collections import Counter
from pathlib import Path

import nbformat
import pytest
import torch

from resnet_lab.exercises import Verdict, batch_norm, ch2, run_check, show_solution, solution_source

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
ROLES = ("stub", "solution")
SOLUTIONS = ROOT / "resnet_lab" / "exercises" / "solutions"
# A module of resnet_lab.exercises (chN, appendix, batch_norm, ...), then one of its check_ functions.
CHECKER_NAME = re.compile(r"[a-z][a-z0-9_]*\.check_\w+")


def exercise_cells() -> list[tuple[str, int, nbformat.NotebookNode]]:
    """(notebook stem, cell index, cell) for every cell that carries "exercise" metadata, in any notebook."""
    found = []
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        for index, cell in enumerate(nb.cells):
            if "exercise" in cell.get("metadata", {}):
                found.append((path.stem, index, cell))
    return found


def resolve_checker(name: str):
    """'ch2.check_x' -> the function resnet_lab.exercises.ch2.check_x."""
    module_name, _, function_name = name.partition(".")
    module = importlib.import_module(f"resnet_lab.exercises.{module_name}")
    return getattr(module, function_name)


def metadata_problems(cell: nbformat.NotebookNode) -> list[str]:
    """Everything wrong with one exercise cell's metadata (an empty list when it is valid)."""
    meta = cell.metadata["exercise"]
    if cell.cell_type != "code":
        return [f"exercise metadata on a {cell.cell_type} cell; it belongs on stub and solution code cells"]
    if not isinstance(meta, dict):
        return [f"exercise metadata must be a dict, not {type(meta).__name__}"]
    problems = []
    if set(meta) != {"checker", "answer", "role"}:
        problems.append(f"exercise metadata keys must be checker, answer, role; got {sorted(meta)}")
    checker = meta.get("checker")
    well_formed = isinstance(checker, str) and CHECKER_NAME.fullmatch(checker)
    if not well_formed:
        problems.append(f"checker {checker!r} must read 'module.check_something' (chN, appendix, batch_norm)")
    else:
        try:
            resolve_checker(checker)
        except (ImportError, AttributeError) as exc:
            problems.append(f"checker {checker!r} cannot be found in resnet_lab.exercises: {exc}")
        if meta.get("role") == "stub" and f"{checker}(" not in cell.source:
            problems.append(f"the cell does not end by calling its checker, {checker}(...)")
        if meta.get("role") == "solution":
            problems += solution_cell_problems(cell, checker.partition(".")[0], meta.get("answer"))
    answer = meta.get("answer")
    if not (isinstance(answer, str) and answer.isidentifier() and not keyword.iskeyword(answer)):
        problems.append(f"answer {answer!r} must be a Python name defined by the cell")
    if meta.get("role") not in ROLES:
        problems.append(f"role {meta.get('role')!r} must be 'stub' or 'solution'")
    return problems


def solution_cell_problems(cell: nbformat.NotebookNode, chapter: str, answer: object) -> list[str]:
    """A solution cell only loads the solution file, and is committed hidden: tagged, never executed."""
    problems = []
    call = f'show_solution("{chapter}", "{answer}")'
    if call not in cell.source:
        problems.append(f"a solution cell must call {call}")
    if "solution" not in cell.metadata.get("tags", []):
        problems.append("a solution cell must be tagged 'solution' (the book shows it as a dropdown)")
    if cell.get("outputs") or cell.get("execution_count") is not None:
        problems.append("a solution cell is committed without outputs: its output would show the solution")
    if not (SOLUTIONS / f"{chapter}_{answer}.py").is_file():
        problems.append(f"the solution file resnet_lab/exercises/solutions/{chapter}_{answer}.py is missing")
    return problems


CELLS = exercise_cells()


def cell_id(item: tuple[str, int, nbformat.NotebookNode]) -> str:
    stem, index, cell = item
    meta = cell.metadata["exercise"]
    if isinstance(meta, dict):
        return f"{stem}:{meta.get('checker')}:{meta.get('role')}"
    return f"{stem}:cell{index}"


@pytest.mark.parametrize("item", CELLS, ids=[cell_id(c) for c in CELLS])
def test_exercise_metadata_is_valid(item):
    stem, index, cell = item
    assert metadata_problems(cell) == [], f"{stem} cell {index}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_checker_has_one_stub_and_one_solution(path):
    cells = [c for stem, _, c in CELLS if stem == path.stem and isinstance(c.metadata["exercise"], dict)]
    metas = [c.metadata["exercise"] for c in cells]
    roles = Counter((meta.get("checker"), meta.get("role")) for meta in metas)
    for checker in {checker for checker, _ in roles}:
        for role in ROLES:
            count = roles[(checker, role)]
            assert count == 1, f"{path.stem}: {checker} has {count} {role} cell(s)"


def test_every_solution_file_belongs_to_an_exercise():
    expected = {f"{c.metadata['exercise']['checker'].partition('.')[0]}_{c.metadata['exercise']['answer']}.py"
                for _, _, c in CELLS if c.metadata["exercise"].get("role") == "solution"}
    found = {p.name for p in SOLUTIONS.glob("*.py") if p.name != "__init__.py"}
    assert found - expected == set(), "solution files that no notebook loads"
    assert expected - found == set(), "solution cells whose file is missing"


@pytest.mark.parametrize("item", CELLS, ids=[cell_id(c) for c in CELLS])
def test_stub_fails_and_solution_passes(item):
    stem, index, cell = item
    if metadata_problems(cell):
        pytest.skip("invalid metadata: reported by test_exercise_metadata_is_valid")
    meta = cell.metadata["exercise"]
    checker = resolve_checker(meta["checker"])
    namespace: dict = {"__name__": f"exercise_{stem}_{index}"}
    source, where = cell.source, f"{stem}.ipynb:cell{index}"
    if meta["role"] == "solution":
        chapter = meta["checker"].partition(".")[0]
        source, where = solution_source(chapter, meta["answer"]), f"{chapter}_{meta['answer']}.py"
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        exec(compile(source, where, "exec"), namespace)
        assert meta["answer"] in namespace, f"the cell does not define {meta['answer']!r}"
        verdict = checker(namespace[meta["answer"]])
    assert isinstance(verdict, Verdict), f"{meta['checker']} must return a Verdict"
    if meta["role"] == "stub":
        assert not verdict, f"the stub passes its checker: {printed.getvalue()}"
    else:
        assert verdict, f"the reference solution fails its checker: {printed.getvalue()}"


CHECKERS = sorted({c.metadata["exercise"]["checker"] for _, _, c in CELLS if not metadata_problems(c)})


def _raises(*args, **kwargs):
    raise ValueError("boom")


@pytest.mark.parametrize("name", CHECKERS)
@pytest.mark.parametrize("answer", [None, 42, _raises], ids=["None", "int", "raising"])
def test_checkers_never_raise_on_wrong_answers(name, answer, capsys):
    verdict = resolve_checker(name)(answer)
    assert isinstance(verdict, Verdict) and not verdict
    assert capsys.readouterr().out.startswith("NOT YET: ")


# ------------------------------------------------------------------------------------------------------------
# resnet_lab.exercises.run_check
# ------------------------------------------------------------------------------------------------------------


def test_run_check_pass(capsys):
    verdict = run_check("demo", lambda: None)
    assert verdict and verdict.ok
    assert verdict.message == "demo: correct."
    assert capsys.readouterr().out == "PASS: demo: correct.\n"
    assert repr(verdict).startswith("PASS")


def test_run_check_hint(capsys):
    verdict = run_check("demo", lambda: "try harder.")
    assert not verdict
    assert verdict.message == "demo: try harder."
    assert capsys.readouterr().out == "NOT YET: demo: try harder.\n"
    assert repr(verdict).startswith("NOT YET")


def test_run_check_wraps_long_verdicts_to_the_page_width(capsys):
    verdict = run_check("demo", lambda: "a long hint " * 20)
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) > 1 and max(map(len, printed)) <= 88
    assert " ".join(line.strip() for line in printed) == repr(verdict).strip()


def test_run_check_turns_not_implemented_into_a_hint(capsys):
    def stub():
        raise NotImplementedError

    verdict = run_check("demo", stub)
    assert not verdict
    assert "NotImplementedError" in verdict.message and "replace it with your code" in verdict.message
    assert capsys.readouterr().out.startswith("NOT YET: ")


def test_run_check_turns_other_exceptions_into_a_hint():
    def broken():
        return {}["missing"]

    verdict = run_check("demo", broken)
    assert not verdict
    assert "KeyError" in verdict.message and "'missing'" in verdict.message
    assert "return {}[\"missing\"]" in verdict.message or "return {}['missing']" in verdict.message


def test_show_solution_shows_the_file_and_runs_its_checker(capsys):
    verdict = show_solution("batch_norm", "fold_bn")
    assert isinstance(verdict, Verdict) and verdict
    out = capsys.readouterr().out
    assert "def fold_bn" in out and "PASS: " in out  # outside Jupyter the code is printed as text


def test_show_solution_names_the_solutions_when_one_is_unknown():
    with pytest.raises(ValueError, match="batch_norm_fold_bn"):
        solution_source("batch_norm", "no_such_answer")
    with pytest.raises(ValueError, match="plain names"):
        solution_source("../batch_norm", "fold_bn")


# ------------------------------------------------------------------------------------------------------------
# Chapter 2 checkers: each classic mistake gets its own hint
# ------------------------------------------------------------------------------------------------------------

class _Stage(torch.nn.Module):
    def __init__(self, f1, f2, extra_skip=False, parallel=False):
        super().__init__()
        self.f1, self.f2, self.extra_skip, self.parallel = f1, f2, extra_skip, parallel

    def forward(self, x):
        x1 = x + self.f1(x)
        out = x1 + self.f2(x if self.parallel else x1)
        return out + x if self.extra_skip else out


@pytest.mark.parametrize("options, hint", [
    ({}, None),
    ({"extra_skip": True}, "returns 2x"),
    ({"parallel": True}, "second branch is applied to x"),
])
def test_check_residual_stage_hints(options, hint, capsys):
    verdict = ch2.check_residual_stage(lambda f1, f2: _Stage(f1, f2, **options))
    assert bool(verdict) is (hint is None)
    if hint:
        assert hint in verdict.message


def _product(jacobians, reverse=False, identity=True):
    result = torch.eye(jacobians[0].shape[0], dtype=jacobians[0].dtype)
    for j in jacobians:
        factor = torch.eye(j.shape[0], dtype=j.dtype) + j if identity else j
        result = result @ factor if reverse else factor @ result
    return result


@pytest.mark.parametrize("answer, hint", [
    (_product, None),
    (lambda js: _product(js, reverse=True), "wrong order"),
    (lambda js: _product(js, identity=False), "plain network"),
    (lambda js: torch.eye(js[0].shape[0], dtype=js[0].dtype) + sum(js), "first-order"),
    (lambda js: js[0], "not the ordered product"),
])
def test_check_stack_jacobian_hints(answer, hint, capsys):
    verdict = ch2.check_stack_jacobian(answer)
    assert bool(verdict) is (hint is None)
    if hint:
        assert hint in verdict.message


# ------------------------------------------------------------------------------------------------------------
# Appendix B checkers (resnet_lab.exercises.batch_norm)
# ------------------------------------------------------------------------------------------------------------


def _bn(dims=(0, 2, 3), unbiased=False, eps_place="inside", affine=True):
    def batch_norm(x, gamma, beta, eps):
        mean = x.mean(dim=dims, keepdim=True)
        var = x.var(dim=dims, keepdim=True, unbiased=unbiased)
        std = torch.sqrt(var + eps) if eps_place == "inside" else torch.sqrt(var) + eps
        x_hat = (x - mean) / std
        return gamma.view(1, -1, 1, 1) * x_hat + beta.view(1, -1, 1, 1) if affine else x_hat

    return batch_norm


@pytest.mark.parametrize("answer, hints", [
    (_bn(), []),
    (_bn(dims=(1, 2, 3)), ["layer normalization"]),
    (_bn(dims=(2, 3)), ["instance normalization"]),
    (_bn(unbiased=True), ["unbiased"]),
    (_bn(eps_place="outside"), ["after the square root"]),
    (_bn(dims=(1, 2, 3), eps_place="outside"), ["layer normalization", "after the square root"]),
    (_bn(affine=False), ["gamma and beta are not applied"]),
])
def test_check_batch_norm_train_hints(answer, hints, capsys):
    verdict = batch_norm.check_batch_norm_train(answer)
    assert bool(verdict) is (not hints)
    for hint in hints:
        assert hint in verdict.message


def test_batch_norm_reference_matches_pytorch_module():
    """The checker's reference (F.batch_norm, training=True) is what nn.BatchNorm2d computes in train mode."""
    x, gamma, beta = batch_norm._bn_case(0, (4, 3, 5, 2))
    module = torch.nn.BatchNorm2d(3, eps=1e-3).double().train()
    with torch.no_grad():
        module.weight.copy_(gamma)
        module.bias.copy_(beta)
    assert torch.allclose(module(x), _bn()(x, gamma, beta, 1e-3), atol=1e-12)


def _fold(eps=True, scale_conv_bias=True, subtract_mean=True):
    def fold_bn(conv, bn):
        with torch.no_grad():
            b = conv.bias if conv.bias is not None else torch.zeros(conv.out_channels, dtype=torch.float64)
            scale = bn.weight / torch.sqrt(bn.running_var + (bn.eps if eps else 0.0))
            mean = bn.running_mean if subtract_mean else 0.0
            bias = bn.bias + scale * (b - mean) if scale_conv_bias else bn.bias - scale * mean + b
            return conv.weight * scale.view(-1, 1, 1, 1), bias

    return fold_bn


@pytest.mark.parametrize("answer, hint", [
    (_fold(), None),
    (_fold(eps=False), "epsilon is missing"),
    (_fold(scale_conv_bias=False), "must be scaled as well"),
    (_fold(subtract_mean=False), "running mean is not subtracted"),
    (lambda conv, bn: (conv.weight.detach(), conv.bias.detach()), "its own scale"),
])
def test_check_fold_bn_hints(answer, hint, capsys):
    verdict = batch_norm.check_fold_bn(answer)
    assert bool(verdict) is (hint is None)
    if hint:
        assert hint in verdict.message


FOLD = "batch_norm.check_fold_bn"


@pytest.mark.parametrize("metadata, source, problem", [
    ({"checker": FOLD, "answer": "fold_bn", "role": "stub"}, f"{FOLD}(fold_bn)", None),
    ({"checker": FOLD, "answer": "fold_bn", "role": "draft"}, f"{FOLD}(fold_bn)", "role"),
    ({"checker": "batch_norm.check_missing", "answer": "f", "role": "stub"}, "batch_norm.check_missing(f)",
     "cannot be found"),
    ({"checker": "fold_bn", "answer": "f", "role": "stub"}, "fold_bn(f)", "must read"),
    ({"checker": FOLD, "answer": "not a name", "role": "stub"}, f"{FOLD}(x)", "answer"),
    ({"checker": FOLD, "answer": "fold_bn", "role": "stub"}, "def fold_bn(): ...", "does not end by calling"),
    ({"checker": FOLD, "answer": "fold_bn"}, f"{FOLD}(fold_bn)", "keys"),
])
def test_metadata_validation_catches_each_defect(metadata, source, problem):
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["exercise"] = metadata
    problems = metadata_problems(cell)
    if problem is None:
        assert problems == []
    else:
        assert any(problem in p for p in problems), problems


def test_metadata_on_a_markdown_cell_is_reported():
    cell = nbformat.v4.new_markdown_cell("text")
    cell.metadata["exercise"] = {"checker": FOLD, "answer": "fold_bn", "role": "stub"}
    assert "markdown cell" in metadata_problems(cell)[0]
