"""Drives timix's /mcp endpoint with the official MCP Python SDK (streamable HTTP client) and
writes what it saw as JSON, for tests/it/mcp.rs to check.

    python3 client.py PLAN.json REPORT.json

PLAN: {"url", "ownerKey", "viewerKey", "logTime": {...}, "ambiguous": {...}} for the fixed
script, or {"url", "ownerKey", "viewerKey", "calls": [[as, label, tool, arguments], ...]}: tool
calls in order, as "owner" or "viewer"; a text "${label.field}" in arguments is the field of an
earlier call's result. An entry {"together": [[as, label, tool, arguments], ...]} (all as the
same user) sends its calls at once in that user's session, as an assistant sending parallel tool
calls does. With "listTools": true the owner's tools are reported under "tools".
"""

import asyncio
import json
import sys

from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


def tool_result(result):
    """A tool result as plain JSON: its error flag, its text parsed, its structured content."""
    text = result.content[0].text if result.content else None
    try:
        parsed = json.loads(text) if text is not None else None
    except ValueError:
        parsed = text
    return {
        "isError": bool(result.is_error),
        "content": parsed,
        "structured": result.structured_content,
    }


async def session_as(key, url, work):
    async with create_mcp_http_client(headers={"X-Api-Key": key}) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                return await work(session)


async def listed_tools(session):
    tools = await session.list_tools()
    return {
        t.name: {
            "description": t.description,
            "inputSchema": t.input_schema,
            "readOnly": bool(t.annotations and t.annotations.read_only_hint),
        }
        for t in tools.tools
    }


async def as_owner(session, plan):
    seen = {}
    init = await session.initialize()
    seen["serverName"] = init.server_info.name
    seen["protocolVersion"] = init.protocol_version
    seen["tools"] = await listed_tools(session)
    seen["logTime"] = tool_result(await session.call_tool("log_time", plan["logTime"]))
    seen["ambiguous"] = tool_result(await session.call_tool("log_time", plan["ambiguous"]))
    seen["lookup"] = tool_result(
        await session.call_tool("lookup", {"kind": "customer", "name": plan["logTime"]["customer"]})
    )
    seen["report"] = tool_result(await session.call_tool("report_unbilled_time", {}))
    seen["badDuration"] = tool_result(
        await session.call_tool("log_time", {**plan["logTime"], "duration": "a while"})
    )
    seen["badArgument"] = tool_result(
        await session.call_tool("create_customer", {"name": "Initech", "colour": "red"})
    )
    seen["createCustomer"] = tool_result(
        await session.call_tool("create_customer", {"name": "Made by an assistant"})
    )
    resources = await session.list_resources()
    seen["resources"] = sorted(str(r.uri) for r in resources.resources)
    seen["read"] = {}
    for uri in ("timix://organization", "timix://me"):
        contents = (await session.read_resource(uri)).contents
        seen["read"][uri] = json.loads(contents[0].text)
    return seen


async def as_viewer(session):
    await session.initialize()
    return {
        "createCustomer": tool_result(await session.call_tool("create_customer", {"name": "Not allowed"})),
        "report": tool_result(await session.call_tool("report_unbilled_time", {})),
    }


def substitute(value, seen):
    """Arguments with "${label.field}" replaced by that field of an earlier result."""
    if isinstance(value, dict):
        return {k: substitute(v, seen) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, seen) for v in value]
    if isinstance(value, str) and value.startswith("${") and value.endswith("}"):
        label, field = value[2:-1].split(".", 1)
        return seen[label]["content"][field]
    return value


def caller(entry):
    """Who sends a plan entry: a call's first field, or that of a group's first call."""
    return entry["together"][0][0] if isinstance(entry, dict) else entry[0]


async def scripted(plan):
    seen = {}
    for who in ("owner", "viewer"):
        entries = [e for e in plan["calls"] if caller(e) == who]
        if not entries:
            continue

        async def work(session, entries=entries, who=who):
            await session.initialize()
            if who == "owner" and plan.get("listTools"):
                seen["tools"] = await listed_tools(session)
            for entry in entries:
                group = entry["together"] if isinstance(entry, dict) else [entry]
                results = await asyncio.gather(
                    *(session.call_tool(tool, substitute(arguments, seen)) for _, _, tool, arguments in group)
                )
                for (_, label, _, _), result in zip(group, results):
                    seen[label] = tool_result(result)

        await session_as(plan[who + "Key"], plan["url"], work)
    return seen


async def main(plan_file, report_file):
    with open(plan_file) as f:
        plan = json.load(f)
    url = plan["url"]
    if "calls" in plan:
        with open(report_file, "w") as f:
            json.dump(await scripted(plan), f, indent=2)
        return
    report = {
        "owner": await session_as(plan["ownerKey"], url, lambda s: as_owner(s, plan)),
        "viewer": await session_as(plan["viewerKey"], url, as_viewer),
    }
    with open(report_file, "w") as f:
        json.dump(report, f, indent=2)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
