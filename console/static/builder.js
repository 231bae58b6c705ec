// The segment builder: edits a CONTRACT §4 definition as a tree of rows and keeps #definition (JSON) in step.
// Every edit fires "builder-change" on the form; htmx then asks the server for the live count.
(function () {
  "use strict";
  const KINDS = [
    ["all", "全部满足 (all)"], ["any", "任一满足 (any)"], ["not", "不满足 (not)"],
    ["tag", "标签 tag"], ["trait", "属性 trait"], ["event", "事件 event"], ["store", "门店 store"],
    ["staff", "员工 staff"], ["channel", "渠道 channel"], ["segment", "人群 segment"],
  ];
  const CHANNELS = [["wecom", "企业微信"], ["official_account", "公众号"], ["miniprogram", "小程序"], ["phone", "手机号"]];
  const COUNT_OPS = ["gte", "gt", "eq", "lte", "lt"];
  let options = {events: [], trait_ops: [], stores: [], segments: []};
  let root = null, form = null, area = null, box = null;

  function kindOf(node) {
    if (node && typeof node === "object") {
      for (const [k] of KINDS) if (k in node) return k;
    }
    return "tag";
  }
  function fresh(kind) {
    switch (kind) {
      case "all": case "any": return {[kind]: [{tag: ""}]};
      case "not": return {not: {tag: ""}};
      case "trait": return {trait: "", op: "eq", value: ""};
      case "event": return {event: options.events[0] || "contact.added", count: {gte: 1}};
      case "channel": return {channel: "wecom"};
      case "segment": return {segment: options.segments.length ? options.segments[0].id : 1};
      case "store": return {store: options.stores[0] || ""};
      default: return {[kind]: ""};
    }
  }
  function el(tag, attrs, children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") e.textContent = v; else e.setAttribute(k, v);
    }
    for (const c of children || []) e.appendChild(c);
    return e;
  }
  function select(pairs, value, onchange, label) {
    const s = el("select", {"aria-label": label});
    for (const [v, t] of pairs) {
      const o = el("option", {value: String(v), text: t});
      if (String(v) === String(value)) o.selected = true;
      s.appendChild(o);
    }
    s.addEventListener("change", () => onchange(s.value));
    return s;
  }
  function input(value, onchange, attrs) {
    const i = el("input", Object.assign({value: value === undefined || value === null ? "" : String(value)}, attrs || {}));
    i.addEventListener("input", () => onchange(i.value));
    return i;
  }
  function parseValue(text, op) {
    if (op === "in") return text.split(/[,，]/).map((s) => s.trim()).filter(Boolean).map(scalar);
    if (["within_last_days", "more_than_days_ago", "anniversary_within_days"].includes(op)) {
      const n = Number(text); return text.trim() !== "" && Number.isInteger(n) ? n : text;
    }
    return scalar(text);
  }
  function scalar(text) {
    const t = text.trim();
    if (t === "true") return true;
    if (t === "false") return false;
    if (t !== "" && !isNaN(Number(t))) return Number(t);
    return text;
  }
  function showValue(node) {
    if (Array.isArray(node.value)) return node.value.join(", ");
    return node.value === undefined || node.value === null ? "" : String(node.value);
  }

  // Renders `node` (held by `set`, which replaces it in its parent) at JSON path `path`.
  function render(node, path, set, remove) {
    const kind = kindOf(node);
    const row = el("div", {class: "node node-" + kind, "data-path": path});
    const head = el("div", {class: "node-head"});
    head.appendChild(select(KINDS, kind, (k) => { set(fresh(k)); rebuild(); }, "条件类型"));
    const changed = () => emit();
    switch (kind) {
      case "all": case "any": {
        const list = el("div", {class: "children"});
        node[kind].forEach((child, i) => {
          list.appendChild(render(child, `${path}.${kind}[${i}]`, (n) => { node[kind][i] = n; },
            node[kind].length > 1 ? () => { node[kind].splice(i, 1); rebuild(); } : null));
        });
        const add = el("button", {type: "button", class: "add", text: "＋ 添加条件"});
        add.addEventListener("click", () => { node[kind].push({tag: ""}); rebuild(); });
        row.appendChild(head); row.appendChild(list); row.appendChild(add);
        break;
      }
      case "not":
        row.appendChild(head);
        row.appendChild(el("div", {class: "children"}, [render(node.not, `${path}.not`, (n) => { node.not = n; }, null)]));
        break;
      case "tag":
        head.appendChild(input(node.tag, (v) => { node.tag = v; changed(); }, {placeholder: "标签名", "aria-label": "标签名"}));
        row.appendChild(head); break;
      case "trait": {
        head.appendChild(input(node.trait, (v) => { node.trait = v; changed(); }, {placeholder: "属性名，如 city", "aria-label": "属性名"}));
        const value = input(showValue(node), (v) => { node.value = parseValue(v, node.op); changed(); },
          {placeholder: "值", "aria-label": "属性值"});
        const sync = () => {
          const none = node.op === "exists" || node.op === "not_exists";
          value.hidden = none;
          if (none) delete node.value; else node.value = parseValue(value.value, node.op);
        };
        head.appendChild(select(options.trait_ops.map((o) => [o, o]), node.op, (o) => { node.op = o; sync(); changed(); }, "比较"));
        head.appendChild(value);
        sync();
        row.appendChild(head); break;
      }
      case "event": {
        head.appendChild(select(options.events.map((e) => [e, e]), node.event, (v) => { node.event = v; changed(); }, "事件类型"));
        const count = node.count || {gte: 1};
        node.count = count;
        let op = Object.keys(count)[0] || "gte";
        const n = input(count[op], (v) => { node.count = {[op]: Number(v)}; changed(); }, {type: "number", min: "0", class: "num", "aria-label": "次数"});
        head.appendChild(el("span", {text: "次数"}));
        head.appendChild(select(COUNT_OPS.map((o) => [o, o]), op, (o) => { op = o; node.count = {[op]: Number(n.value)}; changed(); }, "次数比较"));
        head.appendChild(n);
        head.appendChild(el("span", {text: "近"}));
        head.appendChild(input(node.within_days, (v) => {
          if (v.trim() === "") delete node.within_days; else node.within_days = Number(v); changed();
        }, {type: "number", min: "1", class: "num", placeholder: "全部", "aria-label": "天数"}));
        head.appendChild(el("span", {text: "天"}));
        const where = Object.entries(node.where || {}).map(([k, v]) => `${k}=${v}`).join(", ");
        head.appendChild(input(where, (v) => {
          const pairs = v.split(/[,，]/).map((s) => s.trim()).filter(Boolean).map((s) => s.split("="));
          if (!pairs.length) delete node.where;
          else node.where = Object.fromEntries(pairs.map(([k, ...rest]) => [k.trim(), scalar(rest.join("="))]));
          changed();
        }, {placeholder: "筛选 service=eye-test", "aria-label": "事件筛选"}));
        row.appendChild(head); break;
      }
      case "store":
        head.appendChild(options.stores.length
          ? select(options.stores.map((s) => [s, s]), node.store, (v) => { node.store = v; changed(); }, "门店")
          : input(node.store, (v) => { node.store = v; changed(); }, {placeholder: "门店代码", "aria-label": "门店"}));
        row.appendChild(head); break;
      case "staff":
        head.appendChild(input(node.staff, (v) => { node.staff = v; changed(); }, {placeholder: "员工 userid", "aria-label": "员工"}));
        row.appendChild(head); break;
      case "channel":
        head.appendChild(select(CHANNELS, node.channel, (v) => { node.channel = v; changed(); }, "渠道"));
        row.appendChild(head); break;
      case "segment":
        head.appendChild(options.segments.length
          ? select(options.segments.map((s) => [s.id, `#${s.id} ${s.name}`]), node.segment, (v) => { node.segment = Number(v); changed(); }, "人群")
          : input(node.segment, (v) => { node.segment = Number(v); changed(); }, {type: "number", min: "1", "aria-label": "人群 ID"}));
        row.appendChild(head); break;
    }
    if (remove) {
      const x = el("button", {type: "button", class: "remove link", text: "删除", "aria-label": "删除此条件"});
      x.addEventListener("click", remove);
      head.appendChild(x);
    }
    row.appendChild(el("p", {class: "node-error error", hidden: ""}));
    return row;
  }

  function emit() {
    area.value = JSON.stringify(root);
    htmx.trigger(form, "builder-change");
  }
  function rebuild() {
    box.replaceChildren(render(root, "$", (n) => { root = n; }, null));
    emit();
  }

  // The server names the node a definition is wrong at ($.all[1]); the message goes next to that node.
  function markError(target) {
    for (const p of box.querySelectorAll(".node-error")) { p.hidden = true; p.textContent = ""; }
    for (const n of box.querySelectorAll(".node.invalid")) n.classList.remove("invalid");
    const err = target.querySelector("[data-error-path]");
    if (!err) return;
    let path = err.getAttribute("data-error-path");
    let node = null;
    while (path && !(node = box.querySelector(`.node[data-path="${CSS.escape(path)}"]`))) {
      path = path.replace(/(\.[a-z_]+|\[\d+\])$/, "");
      if (!/[.[]/.test(path)) { node = box.querySelector('.node[data-path="$"]'); break; }
    }
    if (node) {
      node.classList.add("invalid");
      const p = node.querySelector(":scope > .node-error");
      p.textContent = err.textContent; p.hidden = false;
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    box = document.getElementById("builder");
    if (!box) return;
    form = document.getElementById("segment-form");
    area = document.getElementById("definition");
    options = JSON.parse(document.getElementById("builder-options").textContent);
    try { root = JSON.parse(area.value); } catch (e) { root = {all: [{tag: ""}]}; }
    box.replaceChildren(render(root, "$", (n) => { root = n; }, null));
    area.addEventListener("input", () => {  // hand-edited JSON redraws the builder when it parses
      try { root = JSON.parse(area.value); box.replaceChildren(render(root, "$", (n) => { root = n; }, null)); } catch (e) { /* keep typing */ }
      htmx.trigger(form, "builder-change");
    });
    document.body.addEventListener("htmx:afterSwap", (ev) => { if (ev.detail.target.id === "preview") markError(ev.detail.target); });
  });
})();
