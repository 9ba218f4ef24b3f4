"""Connects to timix's /mcp the way an OAuth-only assistant (Claude.ai, ChatGPT) does, with the
official MCP Python SDK's OAuth client (`mcp.client.auth.OAuthClientProvider`), and writes what it
saw as JSON for tests/it/mcp.rs to check.

    python3 oauth_client.py PLAN.json REPORT.json

PLAN: {"url": ".../mcp", "email", "password", "redirectUri", "customer": a name to look up,
"tokenLifetime": the server's access token lifetime in seconds}

The SDK discovers everything from the 401 of /mcp (protected resource metadata, authorization
server metadata), registers the client, and opens the authorization URL with the redirect handler
below. That handler is the user: it logs in to the web UI with the e-mail and password over plain
HTTP, reads the consent page and allows; the code on the redirect goes to the callback handler.
Then: tool calls as that user, a refresh once the access token has expired, and a revocation.
"""

import asyncio
import html
import json
import re
import sys
import time
from urllib.parse import parse_qs, urljoin, urlparse

import httpx2
from mcp import ClientSession
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientMetadata

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"},
    },
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


class MemoryStorage:
    """The SDK's TokenStorage, in memory; every token it was given is kept, in order."""

    def __init__(self):
        self.tokens = None
        self.client_info = None
        self.history = []

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens):
        self.tokens = tokens
        self.history.append(tokens)

    async def get_client_info(self):
        return self.client_info

    async def set_client_info(self, client_info):
        self.client_info = client_info


def hidden_fields(page):
    """The hidden inputs of a page, as (name, value), unescaped."""
    return [
        (html.unescape(name), html.unescape(value))
        for name, value in re.findall(r'<input type="hidden" name="([^"]*)" value="([^"]*)">', page)
    ]


class User:
    """A person with a browser without JavaScript: logs in, reads the consent page, allows."""

    def __init__(self, plan, seen):
        self.plan = plan
        self.seen = seen
        self.answer = None

    async def redirect_handler(self, authorization_url):
        seen = self.seen.setdefault("authorize", {})
        seen["url"] = authorization_url
        query = parse_qs(urlparse(authorization_url).query)
        seen["query"] = {k: v[0] for k, v in query.items() if k not in ("state", "code_challenge")}
        async with httpx2.AsyncClient(follow_redirects=False, timeout=30) as browser:
            first = await browser.get(authorization_url)
            seen["withoutLogin"] = {"status": first.status_code, "location": first.headers.get("location")}
            login_url = urljoin(authorization_url, first.headers["location"])
            login = await browser.get(login_url)
            csrf = dict(hidden_fields(login.text))["_csrf"]
            back_to = parse_qs(urlparse(login_url).query)["next"][0]
            logged_in = await browser.post(
                urljoin(authorization_url, "/login"),
                data={"_csrf": csrf, "email": self.plan["email"], "password": self.plan["password"], "next": back_to},
            )
            seen["login"] = {"status": logged_in.status_code, "location": logged_in.headers.get("location")}
            consent = await browser.get(urljoin(authorization_url, logged_in.headers["location"]))
            seen["consent"] = {"status": consent.status_code, "text": re.sub(r"<[^>]+>", " ", consent.text)}
            form = consent.text.split('action="/oauth/authorize"', 1)[1].split("</form>", 1)[0]
            fields = dict(hidden_fields(form), decision="allow")
            allowed = await browser.post(urljoin(authorization_url, "/oauth/authorize"), data=fields)
            location = allowed.headers.get("location", "")
            seen["allowed"] = {"status": allowed.status_code, "redirect": location.split("?")[0]}
            answer = {k: v[0] for k, v in parse_qs(urlparse(location).query).items()}
            seen["allowed"]["params"] = sorted(answer)
            self.answer = AuthorizationCodeResult(code=answer["code"], state=answer.get("state"), iss=answer.get("iss"))

    async def callback_handler(self):
        return self.answer


def tool_result(result):
    text = result.content[0].text if result.content else None
    try:
        parsed = json.loads(text) if text is not None else None
    except ValueError:
        parsed = text
    return {"isError": bool(result.is_error), "content": parsed}


async def raw_mcp(url, token=None):
    """A bare initialize: status, WWW-Authenticate and the error code."""
    headers = dict(MCP_HEADERS)
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with httpx2.AsyncClient(timeout=30) as http:
        response = await http.post(url, headers=headers, json=INITIALIZE)
    try:
        body = response.json()
    except ValueError:
        body = None
    return {
        "status": response.status_code,
        "wwwAuthenticate": response.headers.get("www-authenticate"),
        "code": (body or {}).get("error", {}).get("code") if isinstance(body, dict) else None,
    }


async def main(plan_file, report_file):
    with open(plan_file) as f:
        plan = json.load(f)
    url = plan["url"]
    seen = {"unauthenticated": await raw_mcp(url)}
    storage = MemoryStorage()
    user = User(plan, seen)
    provider = OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(
            client_name="timix OAuth test",
            redirect_uris=[plan["redirectUri"]],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
        ),
        storage=storage,
        redirect_handler=user.redirect_handler,
        callback_handler=user.callback_handler,
    )

    async def session(work):
        async with create_mcp_http_client(auth=provider) as http:
            async with streamable_http_client(url, http_client=http) as (read, write):
                async with ClientSession(read, write) as s:
                    await s.initialize()
                    return await work(s)

    async def first(s):
        me = json.loads((await s.read_resource("timix://me")).contents[0].text)
        return {
            "me": {"userId": me["user"]["id"], "role": me["user"]["role"], "apiKeyName": me["apiKey"]["name"]},
            "find": tool_result(await s.call_tool("find_customer", {"q": plan["customer"]})),
            "listFlows": tool_result(await s.call_tool("list_flows", {})),
            "createCustomer": tool_result(await s.call_tool("create_customer", {"name": "By the assistant"})),
        }

    seen["first"] = await session(first)
    metadata = provider.context.oauth_metadata
    seen["discovered"] = {
        "resourceMetadata": provider.context.protected_resource_metadata.model_dump(mode="json", exclude_none=True),
        "issuer": str(metadata.issuer),
        "registrationEndpoint": str(metadata.registration_endpoint),
        "tokenEndpoint": str(metadata.token_endpoint),
    }
    client = storage.client_info
    seen["client"] = {
        "clientId": client.client_id,
        "authMethod": client.token_endpoint_auth_method,
        "hasSecret": client.client_secret is not None,
    }
    first_tokens = storage.tokens
    seen["firstTokens"] = {"expiresIn": first_tokens.expires_in, "tokenType": first_tokens.token_type, "scope": first_tokens.scope}

    # Past the access token's lifetime the server refuses it, and the SDK refreshes on its own.
    await asyncio.sleep(max(0.0, provider.context.token_expiry_time - time.time()) + 0.5)
    expired = storage.tokens
    seen["expired"] = await raw_mcp(url, expired.access_token)
    tokens_before = len(storage.history)

    async def second(s):
        me = json.loads((await s.read_resource("timix://me")).contents[0].text)
        return {"userId": me["user"]["id"]}

    seen["second"] = await session(second)
    refreshed = storage.tokens
    seen["refresh"] = {
        "newTokens": len(storage.history) - tokens_before,
        "accessChanged": refreshed.access_token != expired.access_token,
        "refreshRotated": refreshed.refresh_token != expired.refresh_token,
        "fresh": await raw_mcp(url, refreshed.access_token),
    }

    # Revocation (RFC 7009), authenticated as the SDK authenticates the client.
    auth = (client.client_id, client.client_secret) if client.client_secret else None
    form = {"token": refreshed.refresh_token}
    if auth is None:
        form["client_id"] = client.client_id
    async with httpx2.AsyncClient(timeout=30) as http:
        revoked = await http.post(str(metadata.revocation_endpoint), data=form, auth=auth)
        again = await http.post(
            str(metadata.token_endpoint),
            data={"grant_type": "refresh_token", "refresh_token": refreshed.refresh_token},
            auth=auth,
        )
    seen["revoke"] = {
        "status": revoked.status_code,
        "accessAfter": await raw_mcp(url, refreshed.access_token),
        "refreshAfter": {"status": again.status_code, "error": again.json().get("error")},
    }
    with open(report_file, "w") as f:
        json.dump(seen, f, indent=2)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
