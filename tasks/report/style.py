"""The briefing page's stylesheet, inlined into the HTML (the page must open offline).

Kept as a Python string rather than a package data file: the page then needs nothing beyond
the module, whatever way policywatch is installed.
"""

CSS = """
:root {
  --ink: #1c2230; --muted: #5b6475; --faint: #8a93a5; --line: #e2e5eb; --bg: #f5f6f8;
  --card: #fff; --accent: #0b5cad; --new: #0a7d45; --warn: #b3261e; --warn-bg: #fdf0ef;
  --favor: #1F78B4; --neutral: #BDBDBD; --against: #E6550D;
}
* { box-sizing: border-box; }
html { background: var(--bg); }
body {
  margin: 0; color: var(--ink); font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto,
  "Helvetica Neue", Arial, "Noto Sans", "Liberation Sans", sans-serif;
  -webkit-font-smoothing: antialiased;
}
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
code { font: 12.5px ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace; }
.page { max-width: 1180px; margin: 0 auto; padding: 0 24px 48px; }
.masthead { background: #14213d; color: #fff; padding: 22px 0 20px; }
.masthead .page { padding-bottom: 0; }
.masthead .kicker { text-transform: uppercase; letter-spacing: .08em; font-size: 12px;
  color: #a9b8d8; font-weight: 600; }
.masthead h1 { margin: 2px 0 6px; font-size: 28px; font-weight: 700; letter-spacing: -.01em; }
.masthead .meta { margin: 0; color: #c9d3e8; font-size: 13.5px; }
.masthead .meta code { color: #fff; }
.kpis { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 12px;
  margin: 20px 0 8px; }
.kpi { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
  padding: 12px 16px; }
.kpi .n { font-size: 26px; font-weight: 700; line-height: 1.15;
  font-variant-numeric: tabular-nums; }
.kpi .l { color: var(--muted); font-size: 13px; }
.kpi.good .n { color: var(--new); }
.kpi.bad .n { color: var(--warn); }
h2 { font-size: 21px; margin: 0; letter-spacing: -.01em; }
h3 { font-size: 13px; text-transform: uppercase; letter-spacing: .06em; color: var(--muted);
  margin: 0 0 10px; font-weight: 650; }
.panel { background: var(--card); border: 1px solid var(--line); border-radius: 12px;
  padding: 18px 20px; margin: 18px 0; }
.panel > h2 { margin-bottom: 12px; }
.note { color: var(--muted); font-size: 13.5px; margin: 4px 0 12px; }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line);
  vertical-align: top; }
th { color: var(--muted); font-weight: 600; font-size: 12.5px; text-transform: uppercase;
  letter-spacing: .04em; }
tbody th { text-transform: none; letter-spacing: 0; font-size: 14px; color: var(--ink);
  font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.glance td { vertical-align: middle; }
.glance .ent { font-weight: 650; }
.glance tr.quiet td { color: var(--faint); }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 3px;
  margin-right: 8px; vertical-align: 0; }
.pill { display: inline-block; font-size: 12.5px; padding: 1px 9px; border-radius: 999px;
  background: #eef1f6; color: var(--muted); white-space: nowrap; font-weight: 600; }
.pill.new { background: #e3f4eb; color: var(--new); }
.pill.warn { background: var(--warn-bg); color: var(--warn); }
.entity { background: var(--card); border: 1px solid var(--line); border-radius: 12px;
  margin: 22px 0; overflow: hidden; }
.entity-head { display: flex; align-items: center; gap: 10px; flex-wrap: wrap;
  padding: 14px 20px; border-bottom: 1px solid var(--line); border-top: 4px solid; }
.entity-head .top { margin-left: auto; font-size: 13px; }
.entity-body { display: grid; grid-template-columns: minmax(0, 1fr) 400px; }
.entity-body > div { padding: 16px 20px; }
.entity-body > aside { padding: 16px 20px; border-left: 1px solid var(--line);
  background: #fafbfc; }
.entity-body > aside section + section { margin-top: 18px; }
@media (max-width: 900px) {
  .entity-body { grid-template-columns: 1fr; }
  .entity-body > aside { border-left: 0; border-top: 1px solid var(--line); }
}
.claim { border: 1px solid var(--line); border-left: 4px solid var(--new); border-radius: 8px;
  padding: 10px 14px; margin: 0 0 12px; background: var(--card); }
.claim.known { border-left-color: var(--faint); }
.claim blockquote { margin: 0 0 6px; font-size: 15.5px; line-height: 1.45; }
.claim .who { margin: 0 0 6px; font-size: 14px; }
.claim .who strong { font-weight: 650; }
.claim .cue { color: var(--muted); }
.tag { font-size: 11.5px; text-transform: uppercase; letter-spacing: .05em; color: var(--faint);
  border: 1px solid var(--line); border-radius: 4px; padding: 0 5px; margin-left: 6px;
  white-space: nowrap; }
.outlets { list-style: none; margin: 0; padding: 0; font-size: 13.5px; }
.outlets li { padding: 2px 0; display: flex; gap: 8px; align-items: baseline; }
.outlets .src { font-weight: 600; color: var(--ink); white-space: nowrap; }
.outlets a { flex: 1 1 auto; min-width: 0; overflow: hidden; text-overflow: ellipsis;
  white-space: nowrap; }
.outlets time, .when { color: var(--muted); white-space: nowrap; margin-left: auto;
  font-variant-numeric: tabular-nums; }
.earlier { font-size: 13px; color: var(--muted); margin: 6px 0 0; }
.empty-state { color: var(--muted); font-style: italic; margin: 0; }
figure { margin: 0; }
figcaption { font-size: 13px; color: var(--muted); margin-bottom: 4px; }
svg.chart { display: block; max-width: 100%; height: auto; overflow: visible; }
svg.chart text { font-family: inherit; fill: #3c4456; }
svg.chart .tick { font-size: 11px; fill: #6b7385; font-variant-numeric: tabular-nums; }
svg.chart .legend { font-size: 12px; fill: #2c3344; }
svg.chart .value { font-size: 10.5px; fill: #3c4456; font-weight: 600; }
svg.chart .empty { font-size: 12px; fill: #a0a7b5; }
svg.chart .grid { stroke: #eceef2; stroke-width: 1; }
svg.chart .axis { stroke: #9aa2b1; stroke-width: 1; }
details { margin-top: 4px; font-size: 13px; }
details summary { cursor: pointer; color: var(--accent); }
details table { font-size: 12.5px; margin-top: 6px; }
details th, details td { padding: 3px 8px; }
.meter { height: 4px; border-radius: 2px; background: var(--accent); opacity: .6;
  min-width: 3px; margin-top: 3px; }
.topic { margin-bottom: 14px; }
.topic .name { font-weight: 650; font-size: 14px; margin-bottom: 4px; }
.sharebar { display: flex; height: 22px; border-radius: 5px; overflow: hidden; font-size: 12px;
  font-weight: 600; margin: 4px 0 2px; }
.sharebar span { display: flex; align-items: center; justify-content: center; color: #fff;
  white-space: nowrap; overflow: hidden; }
.sharebar .favor { background: var(--favor); }
.sharebar .neutral { background: var(--neutral); color: #333; }
.sharebar .against { background: var(--against); }
.sharelegend { font-size: 12.5px; color: var(--muted); }
.sharelegend b { font-weight: 600; }
.sharelegend .favor { color: var(--favor); } .sharelegend .against { color: var(--against); }
.stance-grid svg.chart { width: 100%; }
.stance-grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(340px, 1fr));
  gap: 18px; }
.problems td { font-size: 13px; }
.problems .url { overflow-wrap: anywhere; max-width: 420px; }
.problems .why { color: var(--warn); }
td.num.failed { color: var(--warn); font-weight: 650; }
.sources > table:first-of-type { max-width: 820px; }
.sources .ok { color: var(--new); font-weight: 650; }
footer { color: var(--faint); font-size: 12.5px; margin-top: 28px; }
.toplink { font-size: 13px; }
@media print {
  html { background: #fff; }
  .masthead { background: #fff; color: #000; }
  .entity, .panel { break-inside: avoid; }
}
"""
