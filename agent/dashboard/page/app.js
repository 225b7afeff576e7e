// The dashboard page: logs in with the host's token, follows the server-sent events (one snapshot
// per sample: the status report, rates, the running step's gate), draws the last minutes with
// uPlot and runs the actions with the session's CSRF token after a confirmation.
/* global document, window, EventSource, uPlot */
"use strict";

(function () {
    const SLOTS = ["blue", "green"];
    const COLORS = { blue: "#2563eb", green: "#16a34a" };
    const $ = (sel, root) => (root || document).querySelector(sel);
    let csrf = null;
    let events = null;
    let chart = null;
    let chartVersions = "";
    let samples = [];
    let lastHistoryKey = "";

    function text(el, value) {
        el.textContent = value === null || value === undefined ? "-" : String(value);
    }

    function fixed(n, digits) {
        return typeof n === "number" ? n.toFixed(digits) : "-";
    }

    async function request(method, path, body) {
        const headers = { Accept: "application/json" };
        if (body !== undefined) headers["Content-Type"] = "application/json";
        if (csrf && method !== "GET") headers["X-CSRF-Token"] = csrf;
        const res = await fetch(path, { method, headers, credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body) });
        let data = null;
        try {
            data = await res.json();
        } catch {
            data = null;
        }
        return { status: res.status, data };
    }

    function showLogin(message) {
        if (events) events.close();
        events = null;
        $("#main").hidden = true;
        $("#login").hidden = false;
        text($("#login-error"), message || "");
        setConnection("logged out", "");
    }

    function setConnection(label, cls) {
        const el = $("#connection");
        el.textContent = label;
        el.className = `badge ${cls}`;
    }

    async function start() {
        const r = await request("GET", "/api/session");
        if (r.status !== 200) return showLogin("");
        csrf = r.data.csrf;
        connect();
    }

    function connect() {
        $("#login").hidden = true;
        $("#main").hidden = false;
        if (events) events.close();
        events = new EventSource("/api/events");
        events.addEventListener("open", () => setConnection("live", "ok"));
        events.addEventListener("samples", (e) => {
            samples = JSON.parse(e.data);
            drawChart();
        });
        events.addEventListener("snapshot", (e) => render(JSON.parse(e.data)));
        events.addEventListener("error", async () => {
            setConnection("reconnecting", "warn");
            const r = await request("GET", "/api/session");
            if (r.status === 401) showLogin("The session ended (the dashboard restarted?): log in again.");
        });
    }

    function render(snap) {
        const report = snap.report;
        if (!report) return;
        text($("#app"), report.app);
        text($("#live"), report.live ? `live: ${report.live.version} on ${report.live.slot}` : "live: (none)");
        $("#maintenance-badge").hidden = !report.maintenance;
        const err = $("#haproxy-error");
        err.hidden = !snap.error;
        text(err, snap.error ? `HAProxy: ${snap.error}` : "");

        for (const s of report.slots) {
            const row = $(`#slot-${s.slot}`);
            const rate = snap.rates ? snap.rates.slots[s.slot] : null;
            text($("[data-field=version]", row), s.version);
            const role = $("[data-field=role]", row);
            text(role, s.role === "warm" ? "warm previous" : s.role === "stopped" || s.role === "running" ? "idle" : s.role);
            role.className = `role-${s.role}`;
            const weight = $("[data-field=weight]", row);
            text(weight, s.weight === null ? null : `${s.weight}%`);
            weight.dataset.weight = s.weight === null ? "" : String(s.weight);
            $(".fill", row).style.width = `${s.weight || 0}%`;
            text($("[data-field=check]", row), s.status === null ? null : `${s.status} / ${s.checkStatus || "-"}`);
            text($("[data-field=inflight]", row), s.sessions);
            text($("[data-field=rps]", row), rate ? fixed(rate.rps, 1) : null);
            text($("[data-field=eps]", row), rate ? fixed(rate.errorsPerSecond, 2) : null);
        }

        const d = report.deploy;
        $("#deploy-idle").hidden = !!d;
        $("#deploy-running").hidden = !d;
        if (d) {
            text(
                $("#deploy-title"),
                `${d.command} ${d.version || ""}${d.slot ? ` on ${d.slot}` : ""} (pid ${d.pid}, since ${new Date(d.startedAt).toLocaleTimeString()})`,
            );
            text($("#deploy-phase"), d.phase);
            text($("#deploy-step"), d.step ? `step ${d.step.index}/${d.step.count}: ${d.step.percent}% on the new release` : "");
            const g = snap.gate;
            text(
                $("#deploy-gate"),
                g ? `this step so far: ${g.summary || `${g.figures.http5xx} 5xx + ${g.figures.errors} errors of ${g.figures.responses} responses`}` : "",
            );
            text($("#deploy-log"), d.logTail.join("\n"));
        } else {
            // Nothing of a finished deploy lingers (a test or an operator reads "shift" only while one runs).
            for (const id of ["#deploy-title", "#deploy-phase", "#deploy-step", "#deploy-gate", "#deploy-log"]) $(id).textContent = "";
        }
        $("#action-abort").disabled = !d || !(d.command === "activate" || d.command === "rollback");
        $("#action-rollback").disabled = !(report.previous && report.previous.warm) || !!d;
        $("#action-maintenance-on").disabled = report.maintenance;
        $("#action-maintenance-off").disabled = !report.maintenance;

        if (snap.rates) {
            if (!samples.length || samples[samples.length - 1].t !== snap.rates.t) samples.push(snap.rates);
            if (samples.length > 600) samples.splice(0, samples.length - 600);
            drawChart();
        }
        const historyKey = `${report.updatedAt}|${report.lock ? report.lock.pid : ""}|${report.maintenance}`;
        if (historyKey !== lastHistoryKey) {
            lastHistoryKey = historyKey;
            loadHistory();
        }
    }

    function chartData() {
        const t = samples.map((s) => s.t / 1000);
        const data = [t];
        for (const slot of SLOTS) data.push(samples.map((s) => s.slots[slot].rps));
        for (const slot of SLOTS) data.push(samples.map((s) => s.slots[slot].errorsPerSecond));
        for (const slot of SLOTS) data.push(samples.map((s) => s.slots[slot].weight));
        return data;
    }

    function drawChart() {
        const el = $("#chart");
        if (!samples.length || typeof uPlot === "undefined") return;
        const last = samples[samples.length - 1];
        const versions = SLOTS.map((s) => `${s}:${last.slots[s].version}`).join(",");
        if (!chart || versions !== chartVersions) {
            if (chart) chart.destroy();
            chartVersions = versions;
            const name = (slot) => `${last.slots[slot].version || "-"} (${slot})`;
            const series = [{}];
            for (const slot of SLOTS) series.push({ label: `${name(slot)} req/s`, stroke: COLORS[slot], width: 2, scale: "rps" });
            for (const slot of SLOTS)
                series.push({ label: `${name(slot)} 5xx+errors/s`, stroke: "#b91c1c", dash: slot === "blue" ? [4, 4] : [1, 3], scale: "rps" });
            for (const slot of SLOTS) series.push({ label: `${name(slot)} weight %`, stroke: COLORS[slot], dash: [8, 4], width: 1, scale: "pct" });
            chart = new uPlot(
                {
                    width: Math.min(1060, el.clientWidth || 1060),
                    height: 280,
                    scales: { rps: { auto: true }, pct: { range: [0, 100] } },
                    axes: [{}, { scale: "rps", label: "req/s" }, { scale: "pct", side: 1, label: "weight %", grid: { show: false } }],
                    series,
                },
                chartData(),
                el,
            );
        } else {
            chart.setData(chartData());
        }
    }

    function failedRequests(r) {
        if (!Array.isArray(r.steps) || !r.steps.length) return "-";
        let n = 0;
        let any = false;
        for (const s of r.steps) {
            if (s && s.figures) {
                n += (s.figures.http5xx || 0) + (s.figures.errors || 0);
                any = true;
            }
        }
        return any ? String(n) : "-";
    }

    async function loadHistory() {
        const r = await request("GET", "/api/history");
        if (r.status !== 200) return;
        const body = $("#history tbody");
        body.textContent = "";
        for (const rec of r.data.records.slice().reverse()) {
            const tr = document.createElement("tr");
            const cells = [
                new Date(rec.time).toLocaleString(),
                rec.command + (rec.mode ? ` (${rec.mode})` : ""),
                rec.version || "",
                rec.from || rec.to ? `${rec.from || "-"} \u2192 ${rec.to || "-"}` : "",
                rec.result,
                rec.gate || "",
                rec.durations && typeof rec.durations.total === "number" ? `${rec.durations.total.toFixed(1)} s` : "",
                failedRequests(rec),
                rec.reason || "",
            ];
            cells.forEach((c, i) => {
                const td = document.createElement("td");
                td.textContent = c;
                if (i === 4) td.className = `result-${rec.result}`;
                tr.appendChild(td);
            });
            body.appendChild(tr);
        }
    }

    const CONFIRM_TEXT = {
        rollback: "Move all traffic back to the warm previous release now?",
        abort: "Abort the running shift? All traffic goes back to the old release and the new slot stops.",
        "maintenance-on": "Show the maintenance page to every visitor?",
        "maintenance-off": "Serve the app to visitors again?",
    };

    function confirmAction(action) {
        const dialog = $("#confirm");
        text($("#confirm-text"), CONFIRM_TEXT[action]);
        dialog.returnValue = "";
        return new Promise((resolve) => {
            dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
            dialog.showModal();
        });
    }

    async function runAction(action) {
        if (!(await confirmAction(action))) return;
        const out = $("#action-result");
        text(out, `${action}: running...`);
        const r = await request("POST", `/api/actions/${action}`, { confirm: action });
        if (r.status === 401) return showLogin("The session ended: log in again.");
        const ok = r.status === 200;
        const detail = r.data ? (r.data.result && r.data.result.error) || r.data.error || "" : "";
        text(out, `${action}: ${ok ? "done" : `refused or failed (${r.status})`}${detail ? ` - ${detail}` : ""}`);
        out.className = ok ? "result-ok" : "error";
        loadHistory();
    }

    $("#confirm-ok").addEventListener("click", () => $("#confirm").close("ok"));
    $("#confirm-cancel").addEventListener("click", () => $("#confirm").close("cancel"));

    for (const button of document.querySelectorAll("#actions button")) {
        button.addEventListener("click", () => runAction(button.dataset.action));
    }

    $("#login-form").addEventListener("submit", async (e) => {
        e.preventDefault();
        const r = await request("POST", "/api/login", { token: $("#token").value });
        $("#token").value = "";
        if (r.status !== 200) return showLogin((r.data && r.data.error) || `login failed (${r.status})`);
        csrf = r.data.csrf;
        connect();
    });

    window.addEventListener("resize", () => {
        if (chart) chart.setSize({ width: Math.min(1060, $("#chart").clientWidth || 1060), height: 280 });
    });

    start();
})();
