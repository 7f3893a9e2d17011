"""HUREN_HIS_ORIGINS: the exact origins the doctor's pages post their message to (never "*")."""

from __future__ import annotations

import pytest

from huren.settings import Settings, check_origin


def test_exact_origins_only() -> None:
    assert check_origin("https://his.example.org/") == "https://his.example.org"
    assert check_origin("http://10.1.2.3:8080") == "http://10.1.2.3:8080"
    for bad in ("*", "https://*.example.org", "https://his.example.org/path", "ftp://his", "'self'", "his.example.org",
                "https://user@his.example.org", "https://his.example.org?x=1"):
        with pytest.raises(ValueError):
            check_origin(bad)
    with pytest.raises(ValueError):
        Settings(his_origins="https://his.example.org *")


def test_by_default_the_named_frame_ancestors() -> None:
    s = Settings(frame_ancestors="'self' https://his.example.org http://10.1.2.3:8080 https://*.example.net https: ")
    assert s.his_origin_list == ("https://his.example.org", "http://10.1.2.3:8080")
    assert Settings().his_origin_list == ()
    assert Settings(his_origins="https://a.example.org  https://b.example.org:8443").his_origin_list == (
        "https://a.example.org", "https://b.example.org:8443",
    )
