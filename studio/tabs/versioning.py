"""The save / history / diff / alias panel shared by the Template and Verbalizer tabs."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr

from backend.services import versions as versions_service
from backend.services.context import StudioContext
from studio.tabs.common import guard
from studio.views.messages import error_html, info_html
from studio.views.tables import VERSION_HEADERS, diff_html, versions_rows


def versions_panel(ctx: StudioContext, kind: str, name: gr.Textbox, content: gr.Textbox,
                   extra_inputs: list[Any], classes_of: Callable[..., list[str] | None],
                   to_editor: Callable[[str], str], project: Any = None) -> dict[str, Any]:
    """Save with a message, list versions, diff two of them, set an alias, load one into the editor.

    ``project``: the session's project state; every call works in that project, and switching it
    refreshes the history.

    ``classes_of(*extra_inputs)`` gives the verbalizer's classes (None for templates); ``to_editor`` turns
    stored content back into editor text.
    """
    with gr.Row():
        message = gr.Textbox(label="Version message", placeholder="what changed and why", scale=3,
                             elem_id=f"ps-{kind}-message")
        save_btn = gr.Button(f"Save {kind} version", variant="primary", scale=1, elem_id=f"ps-{kind}-save")
    save_msg = gr.HTML(elem_id=f"ps-{kind}-save-msg")
    with gr.Accordion("History, diffs and aliases", open=False):
        table = gr.Dataframe(headers=VERSION_HEADERS, interactive=False, elem_id=f"ps-{kind}-history",
                             wrap=True)
        with gr.Row():
            ver_a = gr.Dropdown(label="from version", choices=[], allow_custom_value=True)
            ver_b = gr.Dropdown(label="to version", choices=[], allow_custom_value=True)
            diff_btn = gr.Button("Diff")
        diff_out = gr.HTML(elem_id=f"ps-{kind}-diff")
        with gr.Row():
            alias = gr.Textbox(label="Alias", placeholder="e.g. prod, best")
            alias_ver = gr.Dropdown(label="version", choices=[], allow_custom_value=True)
            alias_btn = gr.Button("Set alias")
            load_btn = gr.Button("Load version into editor")
        alias_msg = gr.HTML()

    project = project if project is not None else gr.State(ctx.project)

    def _choices(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
        return [(f"v{r['version']} {r['message'][:30]}".strip(), str(r["version"])) for r in rows]

    @guard
    def refresh(nm: str, pj: str | None = None) -> tuple[Any, ...]:
        res = versions_service.history(ctx.scoped(pj), kind, nm)
        rows = [] if "error" in res else res["versions"]
        ch = _choices(rows)
        latest = ch[0][1] if ch else None
        prev = ch[1][1] if len(ch) > 1 else latest
        return (versions_rows(rows), gr.Dropdown(choices=ch, value=prev), gr.Dropdown(choices=ch, value=latest),
                gr.Dropdown(choices=ch, value=latest))

    history_outputs = [table, ver_a, ver_b, alias_ver]

    @guard
    def save(pj: str | None, nm: str, text: str, msg: str, *extra: Any) -> tuple[Any, ...]:
        res = versions_service.save(ctx.scoped(pj), kind, nm, text, msg, classes=classes_of(*extra))
        if "error" in res:
            return (error_html(res, text if kind == "template" else None),) + refresh(nm, pj)
        v = res["version"]
        note = f"Saved as {v['name']} v{v['version']}." if res["created"] else \
            f"Unchanged: identical to {v['name']} v{v['version']} (nothing new saved)" + (
                "; it is now the current version, the one this project opens with." if res["now_current"]
                else ".")
        return (info_html(note, "ok"),) + refresh(nm, pj)

    @guard
    def do_diff(nm: str, a: str, b: str, pj: str | None = None) -> str:
        res = versions_service.diff(ctx.scoped(pj), kind, nm, a, b)
        return error_html(res) if "error" in res else diff_html(res["diff"])

    @guard
    def do_alias(nm: str, al: str, ver: str, pj: str | None = None) -> tuple[Any, ...]:
        res = versions_service.set_alias(ctx.scoped(pj), kind, nm, al, ver)
        msg = error_html(res) if "error" in res else info_html(
            f"Alias {al.strip()!r} now points at v{res['version']['version']}.", "ok")
        return (msg,) + refresh(nm, pj)

    @guard
    def do_load(nm: str, ver: str, pj: str | None = None) -> tuple[Any, str]:
        res = versions_service.get(ctx.scoped(pj), kind, nm, ver)
        if "error" in res:
            return gr.skip(), error_html(res)
        return to_editor(res["content"]), info_html(f"Loaded v{res['version']['version']} into the editor.")

    save_btn.click(save, [project, name, content, message, *extra_inputs], [save_msg, *history_outputs],
                   api_name=f"save_{kind}")
    name.change(refresh, [name, project], history_outputs, api_visibility="private")
    project.change(refresh, [name, project], history_outputs, api_visibility="private")
    diff_btn.click(do_diff, [name, ver_a, ver_b, project], [diff_out], api_name=f"diff_{kind}")
    alias_btn.click(do_alias, [name, alias, alias_ver, project], [alias_msg, *history_outputs],
                    api_name=f"alias_{kind}")
    loaded = load_btn.click(do_load, [name, alias_ver, project], [content, alias_msg], api_name=f"load_{kind}")
    return {"refresh": refresh, "history_outputs": history_outputs, "save": save_btn, "table": table,
            "loaded": loaded}
