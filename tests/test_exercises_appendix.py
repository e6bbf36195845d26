"""The find-the-bug exercises of the appendix "Reading ResNet code critically" and their checkers.

Every stub in notebooks/appendix_reading_code.ipynb fails its checker with the hint for its own bug, every
reference solution file resnet_lab/exercises/solutions/appendix_*.py is self-contained and passes, and each
checker names the other classic mistakes it claims to recognize. The variants are made by editing the text of
the reference solutions, so that each one differs from a correct answer by exactly one mistake.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import nbformat
import pytest

from resnet_lab.exercises import Verdict, appendix

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "appendix_reading_code.ipynb"
SOLUTIONS = ROOT / "resnet_lab" / "exercises" / "solutions"

# answer -> (checker name, words of the hint its stub must get)
EXERCISES = {
    "DownsampleBlock": ("check_downsample_block", "no residual addition"),
    "ResidualBlock": ("check_residual_block", "skip starts in the middle"),
    "make_stage": ("check_make_stage", "MaxPool2d inside the stage"),
    "ClassifierHead": ("check_classifier_head", "F is not defined"),
    "prepare_finetuning": ("check_prepare_finetuning", "1000-class ImageNet head"),
    "count_parameters": ("check_count_parameters", "buffers"),
}


def _flat(text: str) -> str:
    """The message on one line: hints are wrapped at 88 columns, so phrases may be split by a newline."""
    return " ".join(text.split())


def _run(source: str, name: str) -> tuple[dict, str]:
    """Execute source in a fresh namespace; (namespace, what it printed)."""
    namespace: dict = {"__name__": f"appendix_test_{name}"}
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        exec(compile(source, f"{name}.py", "exec"), namespace)
    return namespace, printed.getvalue()


def _check(answer: str, source: str) -> Verdict:
    """Run source (a stub or a variant of a solution), then its checker on the name it defines."""
    namespace, _ = _run(source, answer)
    checker = getattr(appendix, EXERCISES[answer][0])
    with contextlib.redirect_stdout(io.StringIO()):
        return checker(namespace[answer])


def _solution(answer: str) -> str:
    return (SOLUTIONS / f"appendix_{answer}.py").read_text(encoding="utf-8")


def _variant(answer: str, *edits: tuple[str, str]) -> str:
    """The reference solution with each (old, new) text replaced; every old text must be there."""
    source = _solution(answer)
    for old, new in edits:
        assert old in source, f"{old!r} is no longer in appendix_{answer}.py: update the test"
        source = source.replace(old, new)
    return source


def _exercise_cells() -> list[nbformat.NotebookNode]:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    return [c for c in nb.cells if c.get("metadata", {}).get("exercise")]


# ------------------------------------------------------------------------------------------------------------
# The notebook's exercise cells and the solution files match
# ------------------------------------------------------------------------------------------------------------


def test_every_exercise_has_a_stub_a_loader_and_a_solution_file():
    cells = _exercise_cells()
    stubs = [c.metadata.exercise["answer"] for c in cells if c.metadata.exercise["role"] == "stub"]
    loaders = [c.metadata.exercise["answer"] for c in cells if c.metadata.exercise["role"] == "solution"]
    assert stubs == loaders == list(EXERCISES)
    files = sorted(p.stem.removeprefix("appendix_") for p in SOLUTIONS.glob("appendix_*.py"))
    assert files == sorted(EXERCISES)
    for cell in cells:
        answer = cell.metadata.exercise["answer"]
        assert cell.metadata.exercise["checker"] == f"appendix.{EXERCISES[answer][0]}"


def test_solution_loaders_are_exactly_the_designed_cell_without_outputs():
    for cell in _exercise_cells():
        if cell.metadata.exercise["role"] != "solution":
            continue
        answer = cell.metadata.exercise["answer"]
        assert cell.source == ("# The reference solution: run this cell to show it and check it.\n"
                               "from resnet_lab.exercises import show_solution\n\n"
                               f'show_solution("appendix", "{answer}")')
        assert cell.metadata.get("tags") == ["solution"]
        assert cell.outputs == [] and cell.execution_count is None


# ------------------------------------------------------------------------------------------------------------
# Stubs fail with their own hint; solutions pass, on their own
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", [c for c in _exercise_cells() if c.metadata.exercise["role"] == "stub"],
                         ids=lambda c: c.metadata.exercise["answer"])
def test_stub_fails_with_the_hint_for_its_bug(cell):
    answer = cell.metadata.exercise["answer"]
    verdict = _check(answer, cell.source)
    assert isinstance(verdict, Verdict) and not verdict
    assert EXERCISES[answer][1] in _flat(verdict.message)


@pytest.mark.parametrize("answer", list(EXERCISES))
def test_solution_file_is_self_contained_and_passes(answer):
    namespace, printed = _run(_solution(answer), answer)
    verdicts = [value for value in namespace.values() if isinstance(value, Verdict)]
    assert verdicts and verdicts[-1], printed
    assert printed.startswith("PASS"), printed
    assert _check(answer, _solution(answer))


@pytest.mark.parametrize("answer", list(EXERCISES))
def test_solution_file_lines_fit_the_book(answer):
    assert all(len(line) <= 88 for line in _solution(answer).splitlines())


@pytest.mark.parametrize("answer", list(EXERCISES))
@pytest.mark.parametrize("wrong", [None, 42, "raising"])
def test_checkers_never_raise_on_wrong_answers(answer, wrong, capsys):
    def raising(*args, **kwargs):
        raise ValueError("boom")

    verdict = getattr(appendix, EXERCISES[answer][0])(raising if wrong == "raising" else wrong)
    assert isinstance(verdict, Verdict) and not verdict
    printed = capsys.readouterr().out
    assert printed.startswith("NOT YET")


def test_hints_are_wrapped_to_88_columns(capsys):
    _check("ResidualBlock", _variant("ResidualBlock", ("identity = x", "identity = 0 * x")))
    verdict = _check("count_parameters", _variant("count_parameters", ("model.parameters()",
                                                                        "model.state_dict().values()")))
    assert "\n" in verdict.message
    assert all(len(line) <= 88 for line in repr(verdict).splitlines())


# ------------------------------------------------------------------------------------------------------------
# Each checker names the other mistakes it recognizes
# ------------------------------------------------------------------------------------------------------------

RETURN_SUM = "return torch.relu(out + shortcut)"

CASES = [
    ("DownsampleBlock", [("shortcut = x if self.downsample is None else self.downsample(x)", "shortcut = x")],
     "adding x itself fails"),
    ("DownsampleBlock", [("shortcut = x if self.downsample is None else self.downsample(x)",
                          "shortcut = self.downsample(x)")], "self.downsample is None"),
    ("DownsampleBlock", [(RETURN_SUM, "return torch.relu(out + shortcut) + shortcut")], "added twice"),
    ("DownsampleBlock", [(RETURN_SUM, "return out + shortcut")], "ReLU after the addition is missing"),
    ("DownsampleBlock", [(RETURN_SUM, "return torch.relu(out) + shortcut")], "ReLU comes before"),
    ("ResidualBlock", [("identity = x", "identity = 0 * x")], "no residual addition"),
    ("ResidualBlock", [("out = torch.relu(self.bn1(self.conv1(x)))",
                        "out = torch.relu(self.bn1(self.conv1(x))) + x\n        identity = 0")],
     "skip ends in the middle"),
    ("ResidualBlock", [("self.bn1(self.conv1(x))", "self.bn1(self.conv1(x)).clamp(min=0)"),
                       ("torch.relu(out + identity)", "torch.relu(out + identity) * 1.5")],
     "check the order of the layers"),
    ("make_stage", [("return nn.Sequential(*layers)", "return nn.Sequential(*layers, None)")],
     "None. nn.Sequential accepts a None"),
    ("make_stage", [("blocks.BasicBlock(planes, planes, 1,", "blocks.BasicBlock(planes, planes, stride,")],
     "only the first block takes the stride"),
    ("make_stage", [('shortcut="B")]', 'shortcut="C")]')], "weights into your stage"),
    ("ClassifierHead", [("out = torch.flatten(self.pool(features), 1)",
                         "out = torch.nn.functional.avg_pool2d(features, 4).flatten(1)")], "top-left 4x4"),
    ("ClassifierHead", [("nn.AdaptiveAvgPool2d(1)", "nn.AdaptiveMaxPool2d(1)")], "maximum"),
    ("ClassifierHead", [("out = torch.flatten(self.pool(features), 1)",
                         "out = torch.nn.functional.avg_pool2d(features, 2).flatten(1)")],
     "raised RuntimeError"),
    ("ClassifierHead", [("self.fc = nn.Linear", "self.classifier = nn.Linear"), ("self.fc(out)",
                                                                                "self.classifier(out)")],
     "Keep the names fc"),
    ("prepare_finetuning", [("nn.Linear(model.fc.in_features, num_classes)", "nn.Linear(512, num_classes)")],
     "has 2048 channels"),
    ("prepare_finetuning", [("nn.Linear(model.fc.in_features, num_classes)",
                             "nn.Linear(model.fc.in_features, 10)")], "outputs; the task has"),
    ("prepare_finetuning", [("parameter.requires_grad = False  # keep", "parameter.requires_grad = True  # keep")],
     "still trainable"),
    ("prepare_finetuning", [("    return model\n", "    model.fc.weight.requires_grad = False\n"
                             "    return model\n")], "head is frozen"),
    ("prepare_finetuning", [("    return model\n", "    torch.nn.init.zeros_(model.conv1.weight)\n"
                             "    return model\n"), ("from torch import nn", "import torch\nfrom torch import nn")],
     "pretrained weights of the backbone changed"),
    ("count_parameters", [("parameter.numel() for parameter in model.parameters()",
                           "1 for parameter in model.parameters()")], "tensors, not numbers"),
    ("count_parameters", [("for parameter in model.parameters())",
                           "for parameter in model.parameters() if parameter.requires_grad)")],
     "only the trainable"),
    ("count_parameters", [("for parameter in model.parameters())",
                           "for _, parameter in model.named_parameters(remove_duplicate=False))")],
     "counted twice"),
    ("count_parameters", [("return sum(", "return 1e-6 * sum(")], "not millions"),
    ("count_parameters", [("return sum(", "return str(sum("), ("model.parameters())", "model.parameters()))")],
     "return an int"),
]


@pytest.mark.parametrize("answer, edits, hint", CASES, ids=[f"{a}-{h[:24]}" for a, _, h in CASES])
def test_checker_names_the_mistake(answer, edits, hint):
    verdict = _check(answer, _variant(answer, *edits))
    assert not verdict
    assert hint in _flat(verdict.message), verdict.message


def test_classifier_head_second_bug_shows_once_f_is_imported():
    """The stub, with the missing import added, fails on the 7x7 map of a 224x224 image, silently."""
    stub = next(c.source for c in _exercise_cells() if c.metadata.exercise["answer"] == "ClassifierHead"
                and c.metadata.exercise["role"] == "stub")
    verdict = _check("ClassifierHead", "import torch.nn.functional as F\n" + stub)
    assert not verdict and "7x7" in verdict.message and "top-left 4x4" in _flat(verdict.message)
