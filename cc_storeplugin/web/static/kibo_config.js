// Kibo configuration page: switch tabs without a reload, and the Contact List Name type-ahead.
(function () {
  const root = document.getElementById("kibo-config");
  if (!root) return;

  function show(tab) {
    const panel = document.getElementById("panel-" + tab);
    if (!panel) return false;
    root.querySelectorAll(".panel").forEach((p) => { p.hidden = p !== panel; });
    root.querySelectorAll(".tab").forEach((t) => t.classList.toggle("active", t.dataset.tab === tab));
    const url = new URL(location.href);
    url.searchParams.set("tab", tab);
    url.searchParams.delete("saved");
    history.replaceState(null, "", url);
    return true;
  }
  root.addEventListener("click", (event) => {
    const link = event.target.closest("a[data-tab]");
    if (link && show(link.dataset.tab)) event.preventDefault();
  });

  const input = document.getElementById("list-name");
  const box = document.getElementById("list-suggestions");
  const form = document.getElementById("settings-form");
  if (!input || !box || !form) return;
  let timer = null;
  let seq = 0;
  function close() { box.hidden = true; box.replaceChildren(); }
  async function suggest() {
    const mine = ++seq;
    const url = new URL(form.dataset.lists, location.href);
    url.searchParams.set("q", input.value.trim());
    const resp = await fetch(url, { headers: { Accept: "application/json" } });
    if (!resp.ok || mine !== seq) return;
    const body = await resp.json();
    box.replaceChildren(...body.lists.map((item) => {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = item.name;
      button.dataset.name = item.name;
      li.append(button);
      return li;
    }));
    box.hidden = body.lists.length === 0;
  }
  input.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(suggest, 200); });
  input.addEventListener("focus", () => { clearTimeout(timer); timer = setTimeout(suggest, 50); });
  input.addEventListener("keydown", (event) => { if (event.key === "Escape") close(); });
  box.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-name]");
    if (!button) return;
    input.value = button.dataset.name;
    close();
  });
  document.addEventListener("click", (event) => {
    if (!event.target.closest(".typeahead")) close();
  });
})();
