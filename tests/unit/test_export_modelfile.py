"""The Ollama Modelfile written next to the GGUF."""

from __future__ import annotations

from abacus_repro.export import write_modelfile
from abacus_repro.export.stage import export_modelfile
from abacus_repro.rules import RulePaths
from abacus_repro.settings import ExportSettings


def test_modelfile_content(tmp_path):
    """With the defaults, through the rule's entry point."""
    gguf = tmp_path / "export" / "model-F16.gguf"
    job = RulePaths(input={"gguf": str(gguf)}, output={"modelfile": str(tmp_path / "export" / "Modelfile")})
    out = export_modelfile(ExportSettings(), job)
    assert out.read_text(encoding="utf-8").splitlines() == [
        "FROM ./model-F16.gguf",
        'TEMPLATE """<用户>{{ .Prompt }}<AI>"""',
        'PARAMETER stop "</s>"',
        'PARAMETER stop "<用户>"',
        "PARAMETER temperature 0.8",
        "PARAMETER top_p 0.9",
    ]


def test_modelfile_follows_config(tmp_path):
    out = write_modelfile(
        tmp_path / "model-Q8_0.gguf", tmp_path / "Modelfile", ExportSettings(temperature=0.2, top_p=1)
    )
    text = out.read_text(encoding="utf-8")
    assert text.startswith("FROM ./model-Q8_0.gguf\n")
    assert "PARAMETER temperature 0.2\n" in text and "PARAMETER top_p 1\n" in text
