"""AO protocol conventions shared by the node and the client for remote units: the module format and
variant this node speaks, tag lists in every spelling, and aoconnect's tag order."""

from __future__ import annotations

from weavedrive.ans104 import first_tag

MODULE_FORMAT = "tfao-lua-5.3"
VARIANT = "ao.TN.1"

__all__ = ["MODULE_FORMAT", "VARIANT", "ao_tags", "data_or_space", "first_tag", "is_decimal", "tag_list"]


def is_decimal(text: str) -> bool:
    """Whether ``text`` is a non-negative integer in ASCII digits (``str.isdigit`` also takes "²", which
    ``int`` refuses)."""
    return text.isascii() and text.isdigit()


def tag_list(tags) -> list[tuple[str, str]]:
    """Tags from a dict, a list of pairs, or aoconnect's list of {name, value}."""
    if tags is None:
        return []
    if isinstance(tags, dict):
        return [(str(k), str(v)) for k, v in tags.items()]
    result = []
    for tag in tags:
        if isinstance(tag, dict):
            result.append((str(tag["name"]), str(tag["value"])))
        else:
            name, value = tag
            result.append((str(name), str(value)))
    return result


def data_or_space(data: str | bytes) -> bytes:
    data = data.encode() if isinstance(data, str) else bytes(data)
    return data or b" "


def ao_tags(user_tags: list, data, protocol_tags: list) -> list:
    """aoconnect's tag order: caller tags, Content-Type (no data), SDK, then the protocol tags."""
    extra = [("Content-Type", "text/plain")] if not data else []
    return [t for t in user_tags if t[0] not in ("Variant", "Type")] + extra + [("SDK", "tfao")] + protocol_tags
