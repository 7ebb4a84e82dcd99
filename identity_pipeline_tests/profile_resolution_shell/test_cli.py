"""`identity-pipeline validate` (in-process); `run` and the code location are in test_subprocess.py."""

from __future__ import annotations

from identity_pipeline import cli
from identity_pipeline_tests.profile_resolution_shell.conftest import make_sample


def test_validate_ok(tmp_path, capsys):
    cfg = make_sample(tmp_path)
    assert cli.main(["validate", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("config OK: profile_resolution: 3 source(s)")


def test_validate_broken_config_names_the_column(tmp_path, capsys):
    cfg = make_sample(tmp_path)
    cfg.write_text(cfg.read_text().replace("email: email_address", "email: emailaddress"))
    assert cli.main(["validate", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "crm_contacts" in err and "'emailaddress'" in err and "email_address" in err
    assert "Traceback" not in err


def test_missing_config_exits_2(tmp_path, capsys):
    assert cli.main(["run", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err
