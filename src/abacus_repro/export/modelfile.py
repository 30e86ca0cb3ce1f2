"""An Ollama Modelfile next to the GGUF: MiniCPM's chat format and the configured sampling."""

from __future__ import annotations

from pathlib import Path

from ..settings import ExportSettings

# MiniCPM's turn format; Ollama fills in the user's message. The answer ends with </s>.
TEMPLATE = "<用户>{{ .Prompt }}<AI>"
STOP_SEQUENCES = ("</s>", "<用户>")


def render_modelfile(gguf_name: str, temperature: float, top_p: float) -> str:
    """The Modelfile text; ``gguf_name`` is taken relative to the Modelfile's directory."""
    lines = [
        f"FROM ./{gguf_name}",
        f'TEMPLATE """{TEMPLATE}"""',
        *(f'PARAMETER stop "{stop}"' for stop in STOP_SEQUENCES),
        f"PARAMETER temperature {float(temperature):g}",
        f"PARAMETER top_p {float(top_p):g}",
    ]
    return "\n".join(lines) + "\n"


def write_modelfile(gguf_path: str | Path, out_path: str | Path, settings: ExportSettings) -> Path:
    """The Modelfile for ``gguf_path`` at ``out_path``, with export.temperature and export.top_p."""
    gguf_path, out_path = Path(gguf_path), Path(out_path)
    text = render_modelfile(gguf_path.name, settings.temperature, settings.top_p)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(text, encoding="utf-8")
    return out_path
