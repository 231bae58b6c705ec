// CSV exports with progress: the download is fetched as a stream, rows are counted against the X-Total-Rows
// header as they arrive, then handed to the browser as a file. Without this script the link downloads as usual.
(function () {
  "use strict";
  async function exportCsv(link) {
    const box = document.getElementById("export-progress");
    const bar = box.querySelector("progress"), text = box.querySelector("span");
    box.hidden = false;
    bar.removeAttribute("value");
    text.textContent = "正在导出…";
    const response = await fetch(link.href, {credentials: "same-origin"});
    if (!response.ok) { text.textContent = `导出失败 (${response.status})`; return; }
    const total = Number(response.headers.get("X-Total-Rows") || 0);
    const reader = response.body.getReader();
    const parts = [];
    let lines = 0;
    for (;;) {
      const {done, value} = await reader.read();
      if (done) break;
      parts.push(value);
      for (const byte of value) if (byte === 10) lines += 1;
      const rows = Math.max(lines - 1, 0);  // the header line is not a row
      bar.max = total || 1;
      bar.value = Math.min(rows, total);
      text.textContent = `已导出 ${rows} / ${total} 行`;
    }
    const name = decodeURIComponent((response.headers.get("Content-Disposition") || "").split("''")[1] || "export.csv");
    const a = document.createElement("a");
    a.href = URL.createObjectURL(new Blob(parts, {type: "text/csv"}));
    a.download = name;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
    text.textContent = `完成：${Math.max(lines - 1, 0)} 行`;
    box.dataset.done = "1";
  }
  document.addEventListener("click", (ev) => {
    const link = ev.target.closest("a[data-export]");
    if (!link || !window.fetch || !window.ReadableStream) return;
    ev.preventDefault();
    exportCsv(link).catch(() => {
      document.querySelector("#export-progress span").textContent = "导出失败，请重试";
    });
  });
})();
