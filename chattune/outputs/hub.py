"""Upload a saved model or adapter directory to the Hugging Face Hub, with a model card.

The directory is written before anything is sent, so a failed upload loses nothing: the error says
where the files are and how to upload them later.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chattune import __version__
from chattune.errors import HubError


def write_model_card(directory: Path, repo_id: str, *, base_model: str | None, tags: list[str],
                     summary: dict[str, Any] | None = None) -> Path:
    """README.md with the hub's metadata header (tags, base model, library) and what training
    did."""
    meta = ["---", "library_name: " + ("peft" if (directory / "adapter_config.json").is_file()
                                       else "transformers")]
    if base_model:
        meta.append(f"base_model: {base_model}")
    meta.append("tags:")
    meta += [f"- {t}" for t in dict.fromkeys(["chattune", "sft", *tags])]
    meta.append("---")
    lines = [*meta, "", f"# {repo_id.split('/')[-1]}", "",
             f"Fine-tuned{f' from `{base_model}`' if base_model else ''} with supervised "
             f"fine-tuning by chattune {__version__}."]
    if summary:
        lines += ["", "| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in summary.items())]
    path = directory / "README.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def push_folder(directory: Path, repo_id: str, *, token: str | None = None,
                private: bool | None = None, revision: str | None = None,
                commit_message: str = "End of training") -> Any:
    """Create `repo_id` if needed and upload `directory`; returns huggingface_hub's CommitInfo."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    try:
        repo = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        return api.upload_folder(repo_id=getattr(repo, "repo_id", repo_id),
                                 folder_path=str(directory),
                                 commit_message=commit_message, revision=revision,
                                 repo_type="model")
    # offline, no token, no permission, network: all leave the files in place
    except Exception as e:
        raise HubError(f"push_to_hub: could not upload to {repo_id!r}: {type(e).__name__}: {e}\n"
                       f"  the model is saved in {directory}; upload it later with "
                       f"`hf upload {repo_id} {directory}`") from e
