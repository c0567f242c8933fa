// wasmig's page: loads the server-rendered part of the page for this address, follows the
// ledger to load it again when a step ends, and runs the plan's buttons. The token (when
// the server has one) comes in the address's fragment (#token=…), never sent to the server
// in the address; it is kept for this tab and sent in a header.
(function () {
  "use strict";
  var KEY = "wasmig-token";
  var main = document.getElementById("main");
  var live = document.getElementById("live");
  // Takes the token from the address's fragment, and takes it out of the address.
  function tokenFromAddress() {
    var match = /(?:^#|&)token=([^&]+)/.exec(location.hash);
    if (!match) return false;
    var token;
    try {
      token = decodeURIComponent(match[1]);
    } catch (e) {
      token = match[1];
    }
    sessionStorage.setItem(KEY, token);
    history.replaceState(null, "", location.pathname + location.search);
    return true;
  }
  tokenFromAddress();
  function headers() {
    var h = { "x-wasmig-request": "1" };
    var token = sessionStorage.getItem(KEY);
    if (token) h["x-wasmig-token"] = token;
    return h;
  }
  // Where the page is mounted ("" at the root of its server).
  var base = document.body.dataset.base || "";
  var path = location.pathname.slice(base.length);
  if (path === "" || path === "/") path = "/overview";
  var fragment = base + "/fragments" + path + location.search;
  var holding = false; // a run's report is on the page: do not replace it

  function showError(text) {
    var p = document.createElement("p");
    p.className = "problem";
    p.textContent = text;
    main.replaceChildren(p);
  }

  function isHtml(response) {
    return (response.headers.get("content-type") || "").indexOf("text/html") === 0;
  }

  async function errorOf(response) {
    try {
      var body = await response.json();
      return body.error || response.statusText;
    } catch (e) {
      return response.status + " " + response.statusText;
    }
  }

  function askToken() {
    var form = document.createElement("form");
    form.className = "token";
    var label = document.createElement("label");
    label.textContent = "This server needs its token (printed when it started):";
    var input = document.createElement("input");
    input.type = "password";
    input.autocomplete = "off";
    input.id = "token";
    var button = document.createElement("button");
    button.type = "submit";
    button.textContent = "Open";
    label.appendChild(input);
    form.append(label, button);
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      sessionStorage.setItem(KEY, input.value.trim());
      load();
    });
    main.replaceChildren(form);
  }

  async function load() {
    var response;
    try {
      response = await fetch(fragment, { headers: headers() });
    } catch (e) {
      showError("The server does not answer.");
      return false;
    }
    if (response.status === 401) {
      askToken();
      return false;
    }
    if (!response.ok || !isHtml(response)) {
      showError(await errorOf(response));
      return false;
    }
    main.innerHTML = await response.text();
    bind();
    return true;
  }

  async function post(url, button) {
    var report = document.getElementById("report");
    button.disabled = true;
    holding = true;
    report.replaceChildren();
    var p = document.createElement("p");
    p.className = "muted";
    p.textContent = "Running…";
    report.appendChild(p);
    try {
      var response = await fetch(url, { method: "POST", headers: headers() });
      if (response.ok && isHtml(response)) {
        report.innerHTML = await response.text();
      } else {
        p.className = "problem";
        p.textContent = await errorOf(response);
      }
    } catch (e) {
      p.className = "problem";
      p.textContent = "The server does not answer.";
    }
    button.disabled = false;
  }

  function bind() {
    var dry = document.getElementById("dry-run");
    if (dry) dry.addEventListener("click", function () { post(base + "/fragments/dry-run", dry); });
    var apply = document.getElementById("apply");
    if (apply) {
      apply.addEventListener("click", function () {
        if (confirm("Apply every pending step now?")) post(base + "/fragments/apply", apply);
      });
    }
  }

  function sleep(ms) {
    return new Promise(function (resolve) { setTimeout(resolve, ms); });
  }

  // The ledger's newest row: the server answers when it changes (or after a while).
  async function follow() {
    var since = null;
    for (;;) {
      try {
        var url = base + "/api/head" + (since === null ? "" : "?since=" + since);
        var response = await fetch(url, { headers: headers() });
        if (!response.ok) {
          live.classList.add("off");
          // Without the token yet: asked again soon after it is entered.
          await sleep(response.status === 401 ? 1000 : 5000);
          continue;
        }
        live.classList.remove("off");
        var head = (await response.json()).head;
        if (since !== null && head !== since && !holding) await load();
        // Answered at once with nothing new (the server is busy): wait before asking again.
        if (head === since) await sleep(1000);
        since = head;
      } catch (e) {
        live.classList.add("off");
        await sleep(2000);
      }
    }
  }

  window.addEventListener("hashchange", function () {
    if (tokenFromAddress()) load();
  });
  load().then(follow);
})();
