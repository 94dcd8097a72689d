"""What chattune saves follows the user's umask, not the 0700/0600 of temporary folders and
safetensors."""

import os
import stat

import pytest

from chattune.files import follow_umask, user_umask
from chattune.outputs.checkpoint import save_checkpoint
from chattune.outputs.save import save_pretrained_atomic
from chattune.prepare.cache import save_cached


@pytest.fixture(params=[0o022, 0o027, 0o002])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def modes(root):
    """{relative path: permission bits} for root and everything in it."""
    out = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        out[str(path.relative_to(root))] = stat.S_IMODE(path.stat().st_mode)
    return out


def assert_follows(root, mask):
    found = modes(root)
    assert any(name.endswith(".safetensors") or name.endswith(".arrow") for name in found), found
    for name, mode in found.items():
        expected = 0o777 & ~mask if (root / name).is_dir() else 0o666 & ~mask
        assert mode == expected, (f"{name}: {oct(mode)}, expected {oct(expected)} under umask "
                                  f"{oct(mask)}")


def test_user_umask_is_read_without_changing_it(umask):
    assert user_umask() == umask and user_umask() == umask


def test_saved_model_checkpoint_and_cache_follow_the_umask(tmp_path, tiny_model, tokenizer, umask,
                                                          prepared_cache):
    stops = [tokenizer.eos_token_id]
    out = save_pretrained_atomic(tiny_model, tokenizer, tmp_path / "model", stops)
    assert_follows(out, umask)
    assert_follows(save_checkpoint(tmp_path, tiny_model, tokenizer, stops,
                                   {"step": 1, "records": []}), umask)
    save_cached("k", {"format": ["messages"], "input_ids": [[1, 2]], "labels": [[-100, 2]],
                      "truncated": [False], "reason": [""], "error": [""]})
    assert_follows(prepared_cache / "k", umask)


def test_follow_umask_leaves_links_alone(tmp_path, umask):
    target = tmp_path / "elsewhere.txt"
    target.write_text("not ours")
    target.chmod(0o600)
    (tmp_path / "out").mkdir(mode=0o700)
    (tmp_path / "out" / "link").symlink_to(target)
    follow_umask(tmp_path / "out")
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o777 & ~umask
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
