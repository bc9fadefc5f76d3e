"""The studio's CSS and the one small script it injects (all served locally: nothing from the internet)."""
from __future__ import annotations

CSS = """
.ps-banner { padding: 6px 10px; border-radius: 6px; font-size: 0.9em; }
.ps-banner.loading { background: #fff7e0; color: #7a5a00; }
.ps-banner.ready { background: #e8f6ec; color: #1d6b36; }
.ps-banner.failed { background: #fde8e8; color: #9b1c1c; }
.ps-msg { margin: 4px 0; padding: 4px 8px; border-radius: 4px; font-size: 0.9em; }
.ps-error { background: #fde8e8; color: #9b1c1c; border-left: 3px solid #d33; }
.ps-warning { background: #fff7e0; color: #7a5a00; border-left: 3px solid #e0a000; }
.ps-info { background: #eef3fb; color: #234; border-left: 3px solid #6b8fd6; }
.ps-ok { background: #e8f6ec; color: #1d6b36; border-left: 3px solid #2e9a50; }
.ps-where { opacity: 0.8; }
pre.ps-marked { white-space: pre-wrap; word-break: break-word; margin: 4px 0; padding: 6px 8px;
  background: var(--block-background-fill); border: 1px solid var(--border-color-primary); border-radius: 4px;
  font-family: ui-monospace, monospace; font-size: 0.9em; }
mark.ps-mark { background: transparent; color: inherit; text-decoration: underline wavy; text-underline-offset: 3px; }
mark.ps-error { text-decoration-color: #d33; background: #fde8e8; }
mark.ps-warning { text-decoration-color: #e0a000; background: #fff7e0; }
.ps-chips { display: flex; flex-wrap: wrap; gap: 3px; margin: 6px 0; font-family: ui-monospace, monospace; }
.ps-chip { padding: 1px 5px; border-radius: 4px; background: #eef1f5; border: 1px solid #d5dae1;
  font-size: 0.85em; white-space: pre; cursor: default; color: #222; }
.ps-chip.ps-special { background: #ececec; color: #666; font-style: italic; }
.ps-chip.ps-mask { background: #ffe1a8; border-color: #e0a000; font-weight: 600; }
.ps-chip.ps-loss { box-shadow: inset 0 -3px 0 #e0a000; }
.ps-chip.ps-soft { background: #e6dcff; border-color: #8a6de0; }
.ps-chip.ps-read { box-shadow: inset 0 -3px 0 #2e9a50; }
.ps-chip.ps-trunc { text-decoration: line-through; opacity: 0.5; background: #fde8e8; }
.ps-chip.ps-demo { background: #eef6ee; border-bottom: 2px dotted #4a8a4a; }
.ps-legend { font-size: 0.85em; margin-bottom: 6px; }
.ps-legend .ps-chip { margin: 0 3px; }
.ps-example { border: 1px solid var(--border-color-primary); border-radius: 6px; padding: 6px 8px; margin: 6px 0; }
.ps-ex-head { font-size: 0.85em; opacity: 0.85; }
table.ps-table { border-collapse: collapse; font-size: 0.85em; margin: 4px 0; }
table.ps-table th, table.ps-table td { border: 1px solid var(--border-color-primary); padding: 2px 6px; text-align: left; }
table.ps-table td.num { text-align: right; font-variant-numeric: tabular-nums; }
.ps-seg-text { font-family: ui-monospace, monospace; white-space: pre-wrap; }
tr.ps-seg-mask td { background: #fff7e0; }
tr.ps-seg-soft td { background: #f3eeff; }
.ps-bar { display: inline-block; height: 10px; background: #6b8fd6; border-radius: 2px; vertical-align: middle; }
.ps-bar.gold { background: #2e9a50; }
.ps-card { border: 1px solid var(--border-color-primary); border-radius: 6px; padding: 8px 10px; }
.ps-card b { font-variant-numeric: tabular-nums; }
.ps-progress { height: 14px; background: #eef1f5; border-radius: 7px; overflow: hidden; }
.ps-progress > div { height: 100%; background: #2e9a50; transition: width 0.5s; }
.ps-diff { font-family: ui-monospace, monospace; white-space: pre-wrap; font-size: 0.85em; }
.ps-diff .add { background: #e8f6ec; } .ps-diff .del { background: #fde8e8; }
#ps-cell, #ps-lengths-trigger, #ps-draft-trigger { display: none; }
"""

# Clicking a confusion-matrix cell (a plotly figure) writes "gold|predicted" into a hidden textbox whose
# change event lists those examples. Gradio re-renders plots, so handlers are (re)bound when one appears.
HEAD_JS = """
<script>
(function () {
  function bind() {
    document.querySelectorAll('#ps-confusion .js-plotly-plot').forEach(function (plot) {
      if (plot.__psBound || !plot.on) return;
      plot.__psBound = true;
      plot.on('plotly_click', function (ev) {
        if (!ev || !ev.points || !ev.points.length) return;
        var p = ev.points[0];
        var box = document.querySelector('#ps-cell textarea, #ps-cell input');
        if (!box) return;
        box.value = p.y + '|' + p.x + '|' + Date.now();
        box.dispatchEvent(new Event('input', { bubbles: true }));
      });
    });
  }
  new MutationObserver(bind).observe(document.documentElement, { childList: true, subtree: true });
  // Work that follows the editors runs once typing pauses, not on every keystroke: redrawing the
  // dataset-wide length histogram (plotly) and keeping drafts in the browser's storage.
  var pending = {};
  function after_pause(id) {
    clearTimeout(pending[id]);
    pending[id] = setTimeout(function () {
      var button = document.querySelector('#' + id);
      if (button) button.click();
    }, 700);
  }
  document.addEventListener('input', function (ev) {
    if (!ev.target.closest) return;
    if (ev.target.closest('#ps-template')) after_pause('ps-lengths-trigger');
    if (ev.target.closest('#ps-template') || ev.target.closest('#ps-label-words')) after_pause('ps-draft-trigger');
  }, true);
})();
</script>
"""
