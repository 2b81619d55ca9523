// Search as you type, categories and paging without reloading, and arrow keys for the
// picker. The server searches and pages (portal/picker.py): this script fetches the same
// page the search form or a link would load and swaps in its results. Without the script
// the search is a plain GET form and the categories and pages are links. The end-user
// portal's "Connect an app" list (templates/end_user_portal.html) uses it as it is.
(function () {
  "use strict";
  var input = document.querySelector("[data-picker-input]");
  var search = document.querySelector("[data-picker-search]");
  var categoryField = document.querySelector("[data-picker-category]");
  var results = document.querySelector("[data-picker-results]");
  if (!input || !search || !results || !window.fetch || !window.DOMParser) return;
  var links = Array.prototype.slice.call(document.querySelectorAll(".categories a[data-category]"));
  var latest = 0, timer = null;

  function buttons() {
    return Array.prototype.slice.call(results.querySelectorAll("#picker-list button"));
  }

  function urlFor(page) {
    var url = new URL(search.getAttribute("action"), window.location.href);
    url.searchParams.set("q", input.value);
    url.searchParams.set("category", categoryField ? categoryField.value : "");
    if (page) url.searchParams.set("page", page);
    return url.toString();
  }

  function load(url, then) {
    var ticket = ++latest;
    results.setAttribute("aria-busy", "true");
    fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (ticket !== latest) return;  // a newer search is on its way
        results.removeAttribute("aria-busy");
        if (html === null) { window.location.assign(url); return; }
        var fresh = new DOMParser().parseFromString(html, "text/html")
          .querySelector("[data-picker-results]");
        if (!fresh) { window.location.assign(url); return; }
        results.innerHTML = fresh.innerHTML;
        if (then) then();
      })
      .catch(function () { window.location.assign(url); });
  }

  input.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(function () { load(urlFor()); }, 200);
  });
  input.addEventListener("keydown", function (event) {
    if (event.key === "ArrowDown") {
      var all = buttons();
      if (all.length) { event.preventDefault(); all[0].focus(); }
    } else if (event.key === "Escape" && input.value) {
      event.preventDefault();
      input.value = "";
      load(urlFor());
    }
  });
  search.addEventListener("submit", function (event) {
    event.preventDefault();
    clearTimeout(timer);
    load(urlFor(), function () {
      var all = buttons();
      if (all.length === 1) all[0].focus();
    });
  });
  links.forEach(function (link) {
    link.addEventListener("click", function (event) {
      event.preventDefault();
      if (categoryField) categoryField.value = link.getAttribute("data-category");
      links.forEach(function (other) {
        if (other === link) other.setAttribute("aria-current", "true");
        else other.removeAttribute("aria-current");
      });
      load(urlFor());
    });
  });
  results.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("a[data-page-link]");
    if (!link) return;
    event.preventDefault();
    load(link.href, function () {
      var all = buttons();
      if (all.length) all[0].focus();
    });
  });
  results.addEventListener("keydown", function (event) {
    if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
    var all = buttons();
    var index = all.indexOf(document.activeElement);
    if (index === -1) return;
    event.preventDefault();
    if (event.key === "ArrowDown" && index < all.length - 1) all[index + 1].focus();
    else if (event.key === "ArrowUp") (index === 0 ? input : all[index - 1]).focus();
  });
})();
