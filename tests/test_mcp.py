"""Agents: the MCP server lists the tools, and image URLs are fetched only from public addresses, size-limited."""

from __future__ import annotations

import asyncio
import base64
import io

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

import remaster
from remaster.fetch import fetch_url, is_public_address

from . import images
from .fixtures import running_app, slow_convolutions
from .hubserver import Fault

pytestmark = pytest.mark.integration


def png_bytes(width: int = 24, height: int = 20) -> bytes:
    buffer = io.BytesIO()
    images.rgb(height, width).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def slow(tiny_models):
    with slow_convolutions(tiny_models, delay=0.1) as name:
        yield name


@pytest.fixture(scope="module")
def mcp_app(enhancer, slow):
    with running_app(enhancer, mcp=True, default_model="tiny-srvgg") as url:
        yield url


def test_the_mcp_server_lists_the_tools_with_their_parameters(mcp_app):
    async def list_tools():
        async with (
            streamable_http_client(mcp_app + "gradio_api/mcp/") as (read, write, _),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            return {tool.name: tool for tool in (await session.list_tools()).tools}

    tools = asyncio.run(list_tools())
    assert {"remaster_image", "remaster_url", "remaster_batch", "compare"} <= set(tools)
    url_tool = tools["remaster_url"]
    assert list(url_tool.inputSchema["properties"]) == ["image_url", "model", "outscale", "face_enhance"]
    assert "public http(s) URLs" in url_tool.description and "RealESRGAN_x4plus" in url_tool.description
    assert "image_url" in url_tool.inputSchema["required"]
    image_tool = tools["remaster_image"]
    registered = remaster.get_model("tiny-srvgg")  # registered by the fixtures before the page was built
    assert registered.label in image_tool.description, "the models the app has, not a list written once"
    assert "tiny-srvgg" in image_tool.inputSchema["properties"]["model"]["description"]
    assert "GFPGANv1.4" in image_tool.inputSchema["properties"]["face_model"]["description"]
    assert not any("{upscaler" in tool.description for tool in tools.values()), "every placeholder filled"


def test_an_agent_is_told_the_progress_of_its_request_in_words(mcp_app, slow):
    image = "data:image/png;base64," + base64.b64encode(png_bytes(64, 48)).decode()
    messages = []

    async def progress(done: float, total: float | None, message: str | None) -> None:
        messages.append(message)

    async def remaster_image():
        async with (
            streamable_http_client(mcp_app + "gradio_api/mcp/") as (read, write, _),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            arguments = {"image": image, "model": slow, "outscale": 4, "tile": "off"}
            return await session.call_tool("remaster_image", arguments, progress_callback=progress)

    result = asyncio.run(remaster_image())
    assert not result.isError, result
    upscaling = [message for message in messages if message and "Upscaling the image" in message]
    steps = {message.rsplit("Step ", 1)[-1] for message in upscaling}
    assert len(steps) >= 3, f"the one tile's progress, in words: {messages}"


def test_the_url_tool_refuses_the_servers_own_network(mcp_app, hub):
    hub.add("/photo.png", png_bytes())
    with pytest.raises(AppError, match="not a public internet address"):
        Client(mcp_app, verbose=False).predict(f"{hub.url}/photo.png", "tiny-srvgg", 2, False, api_name="/remaster_url")


def test_only_public_addresses_are_allowed():
    for address in (
        "127.0.0.1",
        "10.1.2.3",
        "192.168.0.1",
        "172.16.5.4",
        "169.254.169.254",
        "::1",
        "fe80::1",
        "0.0.0.0",
        "224.0.0.1",
        "::ffff:127.0.0.1",
    ):
        assert not is_public_address(address), address
    assert is_public_address("8.8.8.8") and is_public_address("2606:4700:4700::1111")


def test_only_http_and_https_urls_are_fetched(tmp_path):
    for url in ("file:///etc/passwd", "ftp://example.com/a.png", "gopher://x", "not a url"):
        with pytest.raises(remaster.InvalidImageError, match="Only http and https"):
            fetch_url(url, tmp_path, 10**6)


def test_a_fetch_is_size_limited_and_follows_only_checked_redirects(hub, tmp_path):
    allow_loopback_v4 = lambda address: address == "127.0.0.1"  # noqa: E731 - the test server's own address
    hub.add("/small.png", png_bytes())
    hub.add("/big.png", png_bytes(400, 400))
    fetched = fetch_url(f"{hub.url}/small.png", tmp_path / "in", 10**6, allowed=allow_loopback_v4)
    assert fetched.read_bytes() == png_bytes() and fetched.parent == tmp_path / "in"
    with pytest.raises(remaster.InvalidImageError, match="larger than"):
        fetch_url(f"{hub.url}/big.png", tmp_path / "in", 1000, allowed=allow_loopback_v4)
    assert sorted(p.name for p in (tmp_path / "in").iterdir()) == [fetched.name], "no partial download left"
    hub.faults["/hop"] = Fault(location="/small.png")
    assert fetch_url(f"{hub.url}/hop", tmp_path, 10**6, allowed=allow_loopback_v4).read_bytes() == png_bytes()
    port = hub.url.rsplit(":", 1)[1]
    hub.faults["/escape"] = Fault(location=f"http://[::1]:{port}/small.png")
    with pytest.raises(remaster.InvalidImageError, match="not a public internet address"):
        fetch_url(f"{hub.url}/escape", tmp_path, 10**6, allowed=allow_loopback_v4)
    with pytest.raises(remaster.InvalidImageError, match="HTTP 404"):
        fetch_url(f"{hub.url}/missing.png", tmp_path, 10**6, allowed=allow_loopback_v4)
