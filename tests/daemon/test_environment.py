"""The daemon's environment allow-list."""

from __future__ import annotations

from tokend.daemon import environment


def test_only_allowed_variables_stay_and_named_ones_can_come_back() -> None:
    env = {
        "PATH": "/usr/bin",
        "HOME": "/home/u",
        "LC_TIME": "C",
        "XDG_RUNTIME_DIR": "/run/user/1",
        "AWS_PROFILE": "dev",
        "https_proxy": "http://p:3128",
        "HTTPS_PROXY": "http://p:3128",
        "LISTEN_FDS": "1",
        "TOKEND_TIMEOUT": "2",
        "PROD_TOKEN": "xyz",
        "MY_API_KEY": "abc",
        "LD_PRELOAD": "/tmp/evil.so",
        "PYTHONPATH": "/tmp",
    }
    dropped = environment.restrict(env)
    assert dropped == ["LD_PRELOAD", "MY_API_KEY", "PROD_TOKEN", "PYTHONPATH"]
    assert set(env) == {
        "PATH", "HOME", "LC_TIME", "XDG_RUNTIME_DIR", "AWS_PROFILE", "https_proxy", "HTTPS_PROXY",
        "LISTEN_FDS", "TOKEND_TIMEOUT",
    }  # fmt: skip
    assert environment.admit(["MY_API_KEY", "NEVER_SET", "PATH"], env) == ["MY_API_KEY"]
    assert env["MY_API_KEY"] == "abc" and "PROD_TOKEN" not in env


def test_variables_the_configuration_names() -> None:
    profiles = [
        {"var": "API_TOKEN", "ttl": 60.0},
        {"client_secret_env": "AZ_SECRET", "tenant_id": "t"},
        {"token": "env:VAULT_TOKEN_X", "role_id": "r", "secret_id": "file:/x"},
        {"command": ["env:NOT_A_STRING_VALUE"], "env": {"A": "b"}},
    ]
    assert environment.named_by(profiles) == {"API_TOKEN", "AZ_SECRET", "VAULT_TOKEN_X"}


def test_the_ci_id_token_variables_an_oidc_setting_reads() -> None:
    profiles = [
        {"oidc": "github", "role_arn": "arn:aws:iam::123456789012:role/ci"},
        {"oidc": "gitlab:VAULT_ID_TOKEN", "auth": "jwt"},
    ]
    assert environment.named_by(profiles) == {
        "ACTIONS_ID_TOKEN_REQUEST_URL",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
        "VAULT_ID_TOKEN",
    }
