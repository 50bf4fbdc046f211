// The jobs page: lists jobs from GET /api/jobs every few seconds, cancels with DELETE, uploads with a
// one-blob create-only SAS from POST /api/uploads (the bytes go straight to storage), and shows a
// finished job's before/after preview through a read-only SAS from GET /api/jobs/{id}/downloads.
// Who is signed in and their quota come from GET /api/me. The page carries no key: App Service's
// sign-in session (a cookie) goes with every request to this origin.
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
      cell.append(element("p", { textContent: `${o.trained} models trained${passed}. Forecasts: ${where}` }));
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

  for (let index = 0; index < 26; index += 1) $("styles").append(element("option", { value: String(index) }));
  $("upload-form").addEventListener("submit", upload);
  document.addEventListener("visibilitychange", () => !document.hidden && refresh());
  refresh();
  showAccount();
  setInterval(() => !document.hidden && showAccount(), POLL_MS * 5);
})();
