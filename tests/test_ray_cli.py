"""``--executor ray`` / ``--ray-address`` on the CLI and the studio: mistakes are one clear line (exit 2 or
the studio refusing to start) before anything runs, a wrong address in seconds, not after Ray's minutes
of retries. (Runs through Ray: tests/test_ray_executor.py.)"""
from __future__ import annotations

import json

import pytest

from backend.cli import main
from tests.job_helpers import assets, job_config  # noqa: F401 - assets: the tiny model and data on disk


@pytest.fixture
def config_file(assets, tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps(job_config(assets, 2, tmp_path / "out")))
    return str(path)


@pytest.mark.parametrize("extra, says", [
    (["--ray-address", "10.0.0.5:6379"], "--ray-address: only means something with --executor ray"),
    (["--executor", "ray", "--ray-address", " "], "--ray-address: an empty address"),
    (["--executor", "ray", "--seeds", "13,21"], "--seeds: several seeds on Ray run as a sweep"),
    (["--executor", "ray", "--no-db"], "--executor: a run on Ray comes back through its record"),
])
def test_train_option_mistakes_are_one_line(config_file, tmp_path, capsys, extra, says):
    db = tmp_path / "studio.db"
    assert main(["train", config_file, "--db", f"sqlite:///{db}", *extra]) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err
    assert not db.exists()                  # refused before a run was recorded


def test_executor_choices_are_checked_by_argparse(config_file, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", config_file, "--executor", "slurm"])
    assert exc.value.code == 2 and "invalid choice: 'slurm'" in capsys.readouterr().err


@pytest.mark.parametrize("address, says", [
    ("127.0.0.1:1", "nothing answers at 127.0.0.1:1"),
    ("head-without-port", "is not an address: give HOST:PORT"),
    ("ray://10.0.0.5:10001", "ray:// (Ray Client) needs the 'ray[client]' extra"),
])
def test_a_wrong_cluster_address_is_said_at_once(tmp_path, capsys, address, says):
    pytest.importorskip("ray", reason="Ray tests skipped: the 'ray' package is not installed")
    import ray

    if ray.is_initialized():   # left joined by an earlier test in this process: the check needs none
        ray.shutdown()
    code = main(["worker", "--db", f"sqlite:///{tmp_path / 'studio.db'}", "--once", "--executor", "ray",
                 "--ray-address", address])
    err = capsys.readouterr().err
    assert code == 2 and says in err and "Traceback" not in err


def test_the_studio_refuses_a_ray_address_without_the_ray_executor():
    from studio.app import check_args, parse_args

    with pytest.raises(SystemExit, match="--ray-address: only means something with --executor ray"):
        check_args(parse_args(["--ray-address", "10.0.0.5:6379"]))
    args = parse_args(["--executor", "ray", "--ray-address", "10.0.0.5:6379"])
    assert check_args(args) is None and (args.executor, args.ray_address) == ("ray", "10.0.0.5:6379")
