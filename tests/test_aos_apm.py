"""apm, aos's package manager client: requests to the registry, and installing what it sends back."""

import json

import pytest

from test_aos import AUTHORITY, OTHER_PROCESS, Aos

APM_ID = "DKF8oXtPvh3q8s0fJFIeHFyHNM6oKrwMCUrPxEMroak"
PACKAGE = "return { greet = function(name) return 'hi ' .. name end }"


@pytest.fixture
def aos():
    return Aos()


def tag_map(message: dict) -> dict:
    return {tag["name"]: tag["value"] for tag in message["Tags"]}


def registry_reply(aos: Aos, action: str, data: str, sender: str = APM_ID, **tags) -> dict:
    return aos.send([("Action", action), *tags.items()], data=data, from_process=sender, owner=AUTHORITY)


def test_install_requests_a_download_from_the_registry(aos):
    result = aos.eval("return apm.install('@apm/greeter@1.0.0')")
    assert result["Output"]["data"] == "📦 Download requested for @apm/greeter@1.0.0"
    request = result["Messages"][0]
    assert request["Target"] == APM_ID and request["Data"] == "@apm/greeter@1.0.0"
    assert tag_map(request)["Action"] == "APM.Download"
    assert "Invalid package name" in aos.eval("apm.install('greeter@1.0')")["Error"]
    assert "Invalid vendor name" in aos.eval("apm.install('@Bad/x')")["Error"]


def test_a_download_response_installs_the_package(aos):
    reply = registry_reply(aos, "APM.DownloadResponse", PACKAGE.encode().hex(), Name="@apm/greeter",
                           Version="1.0.0", Result="success", Dependencies=json.dumps({}))
    assert "✅ Downloaded @apm/greeter@1.0.0" in reply["Output"]["data"]
    assert aos.eval("return require('greeter').greet('ao')")["Output"]["data"] == "hi ao"
    assert aos.value("apm.installed['@apm/greeter']") == "1.0.0"
    assert aos.eval("return apm.install('@apm/greeter@1.0.0')")["Output"]["data"] == (
        "✅ Package @apm/greeter already installed")
    assert aos.eval("return apm.uninstall('greeter')")["Output"]["data"] == "🗑️ Uninstalled @apm/greeter"
    assert aos.value("package.loaded.greeter == nil") is True


def test_replies_from_anyone_else_are_ignored(aos):
    reply = registry_reply(aos, "APM.DownloadResponse", PACKAGE.encode().hex(), sender=OTHER_PROCESS,
                           Name="@apm/evil", Version="1.0.0")
    assert "from an unknown source ignored" in reply["Output"]["data"]
    assert aos.value("package.loaded.evil == nil") is True


def test_a_broken_package_is_reported_back(aos):
    reply = registry_reply(aos, "APM.DownloadResponse", "this is not lua".encode().hex(), Name="@apm/broken",
                           Version="1.0.0")
    assert "Error compiling load function" in reply["Output"]["data"]
    back = reply["Messages"][0]
    assert back["Target"] == APM_ID and tag_map(back)["Result"] == "error"


def test_search_and_info_print_the_registry_answers(aos):
    found = registry_reply(aos, "APM.SearchResponse", json.dumps([
        {"Vendor": "@apm", "Name": "greeter", "Description": "says hi"}]))
    assert "@apm/greeter | says hi" in found["Output"]["data"]
    info = registry_reply(aos, "APM.InfoResponse", json.dumps({
        "Vendor": "@apm", "Name": "greeter", "Description": "says hi", "Version": "1.0.0", "TotalInstalls": 3,
        "PkgID": "x", "Repository": "r"}))
    assert "🔖 Latest Version : \x1b[32m1.0.0" in info["Output"]["data"]
