"""The container's own line in /etc/hosts, as dockerd writes it (pure)."""

from __future__ import annotations

__all__ = ["own_address_line", "with_own_address"]


def own_address_line(*, address: str, hostname: str, domainname: str = "") -> str:
    """``IP\\thostname`` — or ``IP\\thostname.domain hostname`` with a domain name."""
    names = f"{hostname}.{domainname} {hostname}" if domainname else hostname
    return f"{address}\t{names}\n"


def with_own_address(text: str, *, address: str, hostname: str, domainname: str = "") -> str:
    """``text`` with the container's line appended, replacing one a previous run
    added (same names, any address): a restarted container may get a new address."""
    line = own_address_line(address=address, hostname=hostname, domainname=domainname)
    suffix = line.partition("\t")[2]
    kept = [old for old in text.splitlines(keepends=True)
            if not (old.partition("\t")[2] == suffix and old.partition("\t")[0] != "")]
    body = "".join(kept)
    if body and not body.endswith("\n"):
        body += "\n"
    return body + line
