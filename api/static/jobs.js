// The jobs page: lists jobs from GET /api/jobs every few seconds, cancels with DELETE, uploads with a
// one-blob create-only SAS from POST /api/uploads (the bytes go straight to storage), and shows a
// finished job's before/after preview through a read-only SAS from GET /api/jobs/{id}/downloads.
// Who is signed in and their quota come from GET /api/me. The page carries no key: App Service's
// sign-in session (a cookie) goes with every request to this origin.
// A finished table job's row opens its forecast view: the gate's summary, a search over the
// partitions' keys, and one partition's history, forecast and interval bands drawn as SVG here.
// Plain DOM: text goes in with textContent only, so no blob name or error can inject markup.
"use strict";
(() => {
  const api = new URL("./", location.href); // the page is /api/page: the API is beside it
  const ENDED = new Set(["Completed", "Failed", "Terminated", "Canceled"]);
  const POLL_MS = 2000;
  const MAX_PUT_BYTES = 5000 * 1024 * 1024; // Put Blob's limit: the page uploads in one request
  const rows = new Map(); // job id -> its <tr>
  const links = new Map(); // job id -> download links, fetched once
  const waiting = new Set(); // blob names uploaded from here whose job has not shown up yet

  const $ = (id) => document.getElementById(id);

  async function call(method, path, body) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(new URL(path, api), {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
    const payload = await response.json().catch(() => null);
    if (!response.ok) {
      const message = payload && payload.error ? payload.error.message : `the API answered ${response.status}`;
      throw new Error(response.status === 401 ? "your sign-in has ended: reload the page to sign in again" : message);
    }
    return payload;
  }

  function element(tag, props = {}, ...children) {
    const node = Object.assign(document.createElement(tag), props);
    for (const child of children) node.append(child);
    return node;
  }

  function reason(job) {
    // "Orchestrator function 'stylize_video' failed: input rejected: ..." -> "input rejected: ..."
    const text = (job.error || "").replace(/^Orchestrator function '[^']*' failed: /, "");
    if (job.status === "Terminated" && /canceled/i.test(text)) return "Canceled.";
    return text || "No reason was recorded.";
  }

  function progressCell(job) {
    const p = job.progress || {};
    const cell = element("td");
    const stage = job.stage ? `Stage: ${job.stage}` : ENDED.has(job.status) ? "" : "Waiting to start";
    if (stage) cell.append(element("div", { textContent: stage }));
    // A video counts segments; a many-models table counts partitions (one model each).
    const [done, total, unit] = p.partitions_total
      ? [p.partitions_done || 0, p.partitions_total, "partitions"]
      : [p.segments_done || 0, p.segments_total, "segments"];
    if (total) {
      const bar = element("progress", { max: total, value: done });
      bar.setAttribute("aria-label", `${job.blob}: ${done} of ${total} ${unit}`);
      cell.append(bar);
      const parts = [`${done}/${total} ${unit}`];
      if (p.frames_per_second) parts.push(`${p.frames_per_second} frames/s`);
      if (p.models_per_minute) parts.push(`${p.models_per_minute} models/min`);
      if (p.eta_seconds !== undefined && p.eta_seconds !== null && !ENDED.has(job.status)) {
        parts.push(`about ${Math.max(0, Math.round(p.eta_seconds))} s left`);
      }
      cell.append(element("div", { className: "detail", textContent: parts.join(" · ") }));
    }
    return cell;
  }

  function resultCell(job) {
    const cell = element("td", { className: "result" });
    if (job.status === "Completed" && job.pipeline === "many_models") {
      const o = job.output || {};
      const passed = typeof o.pass_rate === "number" ? `, ${Math.round(o.pass_rate * 100)}% passed the gate` : "";
      const where = (o.outputs || {}).forecasts || "";
      const short = o.partitions_short ? ` (${o.partitions_short} short histories)` : "";
      cell.append(element("p", { textContent: `${o.trained} models trained${short}${passed}. Forecasts: ${where}` }));
      const open = element("button", { type: "button", className: "secondary forecast-open",
                                        textContent: "View forecasts" });
      open.setAttribute("aria-label", `View the forecasts of ${job.blob}`);
      open.addEventListener("click", () => forecasts.open(job));
      cell.append(open);
    } else if (job.status === "Completed") {
      const known = links.get(job.id);
      if (!known) {
        cell.textContent = "Loading the preview…";
        fetchLinks(job.id);
      } else if (known.error) {
        cell.append(element("span", { className: "error", textContent: known.error }));
      } else {
        const image = element("img", {
          className: "preview", src: known.preview, loading: "lazy",
          alt: `Before and after for ${job.blob}: frames of the upload above the same frames restyled`,
        });
        cell.append(image, element("a", { href: known.output, textContent: `Download the styled video`,
                                          className: "download" }));
      }
    } else if (job.status === "Failed" || job.status === "Terminated") {
      cell.append(element("p", { className: "error", textContent: reason(job) }));
    }
    return cell;
  }

  async function fetchLinks(id) {
    links.set(id, { pending: true, preview: "", output: "" });
    try {
      links.set(id, await call("GET", `jobs/${encodeURIComponent(id)}/downloads`));
    } catch (error) {
      links.set(id, { error: `Could not get the download links: ${error.message}` });
    }
    refresh();
  }

  function actionCell(job) {
    const cell = element("td");
    if (!ENDED.has(job.status)) {
      const button = element("button", { type: "button", className: "secondary cancel", textContent: "Cancel" });
      button.setAttribute("aria-label", `Cancel the job for ${job.blob}`);
      button.addEventListener("click", async () => {
        button.disabled = true;
        try {
          await call("DELETE", `jobs/${encodeURIComponent(job.id)}`);
          $("jobs-status").textContent = `Canceled the job for ${job.blob}.`;
        } catch (error) {
          $("jobs-status").textContent = `Could not cancel the job for ${job.blob}: ${error.message}`;
        }
        refresh();
      });
      cell.append(button);
    }
    return cell;
  }

  // Each cell is rebuilt only when what it shows changes, so a focused Cancel button stays put
  // while the progress next to it moves.
  const CELLS = [
    ["name", (job) => job.blob || job.id, (job) => element("th", { scope: "row", textContent: job.blob || job.id })],
    ["status", (job) => job.status,
      (job) => element("td", { className: `status status-${job.status}`, textContent: job.status })],
    ["progress", (job) => JSON.stringify([job.status, job.stage, job.progress]), progressCell],
    ["result", (job) => { const known = links.get(job.id); return JSON.stringify([job.status, job.error,
      known && (known.output || known.error)]); }, resultCell],
    ["actions", (job) => String(ENDED.has(job.status)), actionCell],
  ];

  function update(row, job) {
    CELLS.forEach(([name, key, build], index) => {
      const wanted = key(job);
      if (row.dataset[name] === wanted && row.cells[index]) return;
      const cell = build(job);
      if (row.cells[index]) row.cells[index].replaceWith(cell); else row.append(cell);
      row.dataset[name] = wanted;
    });
    row.dataset.jobId = job.id;
    row.dataset.status = job.status;
  }

  function render(jobs) {
    const body = $("jobs").tBodies[0];
    const seen = new Set();
    jobs.forEach((job, index) => {
      seen.add(job.id);
      waiting.delete(job.blob);
      if (!rows.has(job.id)) rows.set(job.id, element("tr"));
      const row = rows.get(job.id);
      update(row, job);
      if (body.children[index] !== row) body.insertBefore(row, body.children[index] || null);
    });
    for (const [id, row] of rows) {
      if (!seen.has(id)) { row.remove(); rows.delete(id); }
    }
    const pending = waiting.size ? ` Waiting for the job of ${[...waiting].join(", ")} to start.` : "";
    $("jobs-status").textContent = (jobs.length ? `${jobs.length} job${jobs.length === 1 ? "" : "s"}.` :
      "No jobs yet: upload a video above.") + pending;
  }

  let timer = null;
  async function refresh() {
    clearTimeout(timer);
    try {
      render((await call("GET", "jobs")).jobs);
    } catch (error) {
      $("jobs-status").textContent = `Could not load the jobs: ${error.message}`;
    }
    timer = setTimeout(refresh, document.hidden ? POLL_MS * 5 : POLL_MS);
  }

  function storageError(xhr) {
    const match = /<Message>([^<]*)/.exec(xhr.responseText || "");
    const code = (/<Code>([^<]*)/.exec(xhr.responseText || "") || [])[1];
    if (xhr.status === 412 || xhr.status === 409 || code === "AuthorizationPermissionMismatch") {
      return "a blob with that name exists already (an upload link can only create)";
    }
    if (xhr.status === 403) return "storage refused the upload (the upload link may have expired; try again)";
    return match ? match[1].split("\n")[0] : `storage answered ${xhr.status || "nothing (network error)"}`;
  }

  function put(ticket, file, onProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open(ticket.method, ticket.url);
      for (const [name, value] of Object.entries(ticket.headers)) xhr.setRequestHeader(name, value);
      xhr.upload.addEventListener("progress", (event) => event.lengthComputable && onProgress(event.loaded / event.total));
      xhr.addEventListener("load", () => (xhr.status < 300 ? resolve() : reject(new Error(storageError(xhr)))));
      xhr.addEventListener("error", () => reject(new Error(storageError(xhr))));
      xhr.send(file);
    });
  }

  async function upload(event) {
    event.preventDefault();
    const file = $("file").files[0];
    const status = $("upload-status");
    if (!file) { status.textContent = "Choose a video file first."; $("file").focus(); return; }
    if (file.size > MAX_PUT_BYTES) {
      status.textContent = `${file.name} is over 5000 MiB, the most one upload from a page can send; ` +
        "use `restyle submit`, which uploads in blocks.";
      return;
    }
    const options = {};
    if ($("scale").value && Number($("scale").value) !== 1) options.scale = $("scale").value;
    const button = $("upload-button");
    const bar = $("upload-progress");
    button.disabled = true;
    try {
      const ticket = await call("POST", "uploads", { name: file.name, size: file.size,
                                                      style: $("style").value.trim(), options });
      bar.hidden = false;
      bar.value = 0;
      status.textContent = `Uploading ${file.name}…`;
      await put(ticket, file, (share) => { bar.value = Math.round(share * 100); });
      waiting.add(ticket.blob);
      status.textContent = `Uploaded ${ticket.blob}. Its job appears in the list below within a few seconds.`;
      $("upload-form").reset();
      refresh();
      showAccount();
    } catch (error) {
      status.textContent = `Upload failed: ${error.message}`;
    } finally {
      button.disabled = false;
      bar.hidden = true;
    }
  }

  // Who is signed in, and how much of their quota they use (GET /api/me).
  async function showAccount() {
    const line = $("account");
    try {
      const { caller, usage, sign_out: signOut } = await call("GET", "me");
      if (caller.kind === "key") {
        line.textContent = "Not signed in: this local stack is open, and every job here is the key's.";
      } else {
        const parts = [`Signed in as ${caller.name}${caller.operator ? " (operator: all jobs)" : ""}.`];
        if (usage.running_limit !== null) {
          parts.push(`${usage.running} of ${usage.running_limit} jobs running`,
            `${usage.gpu_minutes_today} of ${usage.gpu_minutes_limit} GPU minutes today (UTC)`);
        }
        line.textContent = parts.join(" · ");
      }
      if (signOut) {
        const back = encodeURIComponent(location.pathname);
        line.append(element("a", { href: `${signOut}?post_logout_redirect_uri=${back}`, textContent: "Sign out" }));
      }
    } catch (error) {
      line.textContent = `Could not read who is signed in: ${error.message}`;
    }
  }

  // --- the forecast view of a table job ------------------------------------------------------
  const SVG = "http://www.w3.org/2000/svg";
  const CHART = { width: 760, height: 320, left: 64, right: 16, top: 16, bottom: 40 };
  const STATUS_NAMES = { passed: "Passed", fallback: "Fallback (seasonal naive)", short_history: "Short history",
                         champion: "Champion kept", rejected: "Rejected", failed: "Failed" };

  function svg(tag, attributes = {}, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function keysText(keys) {
    return Object.entries(keys).map(([name, value]) => `${name}=${value}`).join(" · ");
  }

  function niceTicks(low, high, count = 5) {
    const span = high - low || Math.abs(high) || 1;
    const step0 = span / count;
    const magnitude = 10 ** Math.floor(Math.log10(step0));
    const step = [1, 2, 2.5, 5, 10].map((f) => f * magnitude).find((s) => s >= step0);
    const ticks = [];
    for (let v = Math.ceil(low / step) * step; v <= high + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
    return ticks;
  }

  function number(value) {
    return Math.abs(value) >= 1000 ? Math.round(value).toLocaleString("en") : Number(value.toPrecision(4)).toString();
  }

  // History as a line, the forecast as a line over its bands (widest level first), on one scale.
  // The scale is on the <svg> as data-* attributes, so what was drawn can be read back.
  function drawChart(data) {
    const chart = $("forecast-chart");
    chart.replaceChildren();
    const history = data.history.filter((p) => p.value !== null);
    const steps = data.forecast;
    const levels = [...data.levels].sort((a, b) => b - a);
    const name = (side, level) => `${side}_${Number(level).toString()}`;
    const values = history.map((p) => p.value);
    for (const step of steps) {
      values.push(step.mean);
      for (const level of levels) {
        for (const side of ["lo", "hi"]) if (step[name(side, level)] !== null) values.push(step[name(side, level)]);
      }
    }
    let low = Math.min(...values), high = Math.max(...values);
    if (low === high) { low -= 1; high += 1; }
    const pad = (high - low) * 0.05;
    low -= pad; high += pad;
    const total = history.length + steps.length;
    const plotWidth = CHART.width - CHART.left - CHART.right, plotHeight = CHART.height - CHART.top - CHART.bottom;
    const x = (i) => CHART.left + (total > 1 ? (i / (total - 1)) * plotWidth : plotWidth / 2);
    const y = (v) => CHART.top + (1 - (v - low) / (high - low)) * plotHeight;
    const point = (i, v) => `${x(i).toFixed(2)},${y(v).toFixed(2)}`;
    Object.assign(chart.dataset, { valueLow: low, valueHigh: high, plotTop: CHART.top,
                                   plotBottom: CHART.top + plotHeight, firstStep: history.length });
    for (const tick of niceTicks(low, high)) {
      chart.append(svg("line", { class: "grid", x1: CHART.left, x2: CHART.width - CHART.right, y1: y(tick), y2: y(tick) }));
      chart.append(svg("text", { x: CHART.left - 6, y: y(tick) + 4, "text-anchor": "end" }, number(tick)));
    }
    chart.append(svg("line", { class: "axis", x1: CHART.left, x2: CHART.left, y1: CHART.top, y2: CHART.top + plotHeight }));
    chart.append(svg("line", { class: "axis", x1: CHART.left, x2: CHART.width - CHART.right,
                               y1: CHART.top + plotHeight, y2: CHART.top + plotHeight }));
    const offset = history.length;
    levels.forEach((level, index) => {
      const usable = steps.every((step) => step[name("lo", level)] !== null && step[name("hi", level)] !== null);
      if (!usable || !steps.length) return;
      const upper = steps.map((step, i) => point(offset + i, step[name("hi", level)]));
      const lower = steps.map((step, i) => point(offset + i, step[name("lo", level)])).reverse();
      const band = svg("polygon", { class: `band band-${level}${index === levels.length - 1 && levels.length > 1 ?
        " band-inner" : ""}`, points: [...upper, ...lower].join(" "), "data-level": level });
      band.append(svg("title", {}, `${level}% interval`));
      chart.append(band);
    });
    if (history.length) {
      chart.append(svg("polyline", { class: "history", points: history.map((p, i) => point(i, p.value)).join(" ") }));
    }
    if (steps.length) {
      const joined = history.length ? [point(offset - 1, history[history.length - 1].value)] : [];
      chart.append(svg("polyline", { class: "forecast",
                                     points: [...joined, ...steps.map((s, i) => point(offset + i, s.mean))].join(" ") }));
      chart.append(svg("line", { class: "start", x1: x(offset), x2: x(offset), y1: CHART.top, y2: CHART.top + plotHeight }));
    }
    const stamps = [...history.map((p) => p.timestamp), ...steps.map((s) => s.timestamp)];
    const labelled = [...new Set([0, offset, total - 1])].filter((i) => i >= 0 && i < total);
    for (const i of labelled) {
      chart.append(svg("text", { x: x(i), y: CHART.height - 14, "text-anchor": i === 0 ? "start" : i === total - 1 ?
        "end" : "middle" }, String(stamps[i]).slice(0, 10)));
    }
  }

  function legend(levels, flaggedShort) {
    const parts = [element("span", {}, element("span", { className: "swatch swatch-history" }), "history"),
                   element("span", {}, element("span", { className: "swatch swatch-forecast" }), "forecast")];
    [...levels].sort((a, b) => b - a).forEach((level, index) => parts.push(element("span", {},
      element("span", { className: `swatch ${index === levels.length - 1 && levels.length > 1 ? "swatch-band-inner" :
        "swatch-band"}` }), `${level}% interval`)));
    $("forecast-legend").replaceChildren(...parts);
    if (flaggedShort) $("forecast-legend").append(element("span", { textContent: "(short history)" }));
  }

  function valuesTable(data) {
    const names = data.levels.flatMap((level) => [`lo_${level}`, `hi_${level}`]);
    const head = element("tr", {}, element("th", { scope: "col", textContent: "Period" }),
                         element("th", { scope: "col", textContent: "Forecast" }),
                         ...data.levels.map((level) => element("th", { scope: "col", textContent: `${level}% range` })));
    $("forecast-values").tHead.replaceChildren(head);
    $("forecast-values").tBodies[0].replaceChildren(...data.forecast.map((step) => element("tr", {},
      element("td", { textContent: String(step.timestamp).slice(0, 10) }),
      element("td", { textContent: number(step.mean) }),
      ...data.levels.map((level) => element("td", { textContent: step[`lo_${level}`] === null ? "not estimated" :
        `${number(step[`lo_${level}`])} – ${number(step[`hi_${level}`])}` })))));
    return names;
  }

  const forecasts = {
    job: null, status: "",
    open(job) {
      this.job = job;
      this.status = "";
      $("forecast-view").hidden = false;
      $("forecast-figure").hidden = true;
      $("forecast-heading").textContent = `Forecasts of ${job.blob}`;
      $("partition-query").value = "";
      this.search();
      $("forecast-view").scrollIntoView({ block: "start" });
      $("partition-query").focus();
    },
    close() {
      $("forecast-view").hidden = true;
      this.job = null;
    },
    async search() {
      const job = this.job;
      const query = new URLSearchParams({ q: $("partition-query").value.trim(), limit: "50" });
      if (this.status) query.set("status", this.status);
      $("forecast-status").textContent = "Loading the partitions…";
      try {
        const found = await call("GET", `jobs/${encodeURIComponent(job.id)}/partitions?${query}`);
        if (job !== this.job) return;
        this.summary(found);
        this.list(found);
        $("forecast-status").textContent = `Dataset ${found.dataset}, run ${found.run_id}; gate rule ${found.rule}.`;
      } catch (error) {
        $("forecast-status").textContent = `Could not load the partitions: ${error.message}`;
      }
    },
    summary(found) {
      const buttons = Object.entries(STATUS_NAMES).map(([status, label]) => {
        const button = element("button", { type: "button", className: "secondary",
                                           textContent: `${label}: ${found.counts[status]}` });
        button.dataset.status = status;
        button.setAttribute("aria-pressed", String(this.status === status));
        button.addEventListener("click", () => { this.status = this.status === status ? "" : status; this.search(); });
        return button;
      });
      const all = element("button", { type: "button", className: "secondary", textContent: `All: ${found.total}` });
      all.dataset.status = "";
      all.setAttribute("aria-pressed", String(!this.status));
      all.addEventListener("click", () => { this.status = ""; this.search(); });
      $("gate-summary").replaceChildren(all, ...buttons);
    },
    list(found) {
      const shown = found.partitions.length;
      $("partition-matches").textContent = found.matches === shown ? `${shown} partition${shown === 1 ? "" : "s"}.` :
        `${shown} of ${found.matches} matching partitions shown; narrow the search to find others.`;
      $("partitions").tBodies[0].replaceChildren(...found.partitions.map((row) => {
        const keys = keysText(row.keys);
        const name = row.status === "rejected" || row.status === "failed" ? element("span", { textContent: keys }) :
          element("button", { type: "button", className: "secondary partition", textContent: keys });
        if (name.tagName === "BUTTON") {
          name.setAttribute("aria-label", `Show the forecast of ${keys}`);
          name.addEventListener("click", () => this.show(row));
        }
        const tr = element("tr", {}, element("th", { scope: "row" }, name),
                           element("td", { className: `gate gate-${row.status}`, textContent: STATUS_NAMES[row.status] }),
                           element("td", { className: "detail", textContent: row.reason }));
        tr.dataset.partition = row.partition_id;
        return tr;
      }));
    },
    async show(row) {
      const job = this.job;
      $("forecast-status").textContent = `Loading the forecast of ${keysText(row.keys)}…`;
      try {
        const data = await call("GET", `jobs/${encodeURIComponent(job.id)}/forecast?partition=${
          encodeURIComponent(row.partition_id)}`);
        if (job !== this.job) return;
        const model = data.model || {};
        $("forecast-caption").textContent = `${keysText(data.keys)}: ${data.history.length} observations and ` +
          `${data.forecast.length} periods of forecast with ${data.levels.map((l) => `${l}%`).join(" and ")} intervals`;
        drawChart(data);
        legend(data.levels, model.short_history);
        valuesTable(data);
        const bits = [`Model: ${model.model_type} (version ${model.model_version}, run ${model.model_run_id})`];
        if (model.short_history) bits.push(`Short history: ${model.short_history_reason}`);
        else bits.push(`Gate: ${row.reason}`);
        $("forecast-model").textContent = bits.join(". ") + ".";
        $("forecast-figure").hidden = false;
        $("forecast-figure").dataset.partition = data.partition_id;
        $("forecast-status").textContent = `Showing ${keysText(data.keys)}.`;
      } catch (error) {
        $("forecast-status").textContent = `Could not load the forecast: ${error.message}`;
      }
    },
  };

  $("partition-search").addEventListener("submit", (event) => { event.preventDefault(); forecasts.search(); });
  $("forecast-close").addEventListener("click", () => forecasts.close());

  for (let index = 0; index < 26; index += 1) $("styles").append(element("option", { value: String(index) }));
  $("upload-form").addEventListener("submit", upload);
  document.addEventListener("visibilitychange", () => !document.hidden && refresh());
  refresh();
  showAccount();
  setInterval(() => !document.hidden && showAccount(), POLL_MS * 5);
})();
