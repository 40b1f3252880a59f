// Copy buttons: <button class="copy" data-copy="#input-id">
document.addEventListener("click", (event) => {
  const button = event.target.closest("button.copy");
  if (!button) return;
  const input = document.querySelector(button.dataset.copy);
  input.select();
  (navigator.clipboard ? navigator.clipboard.writeText(input.value) : Promise.reject())
    .catch(() => document.execCommand("copy"))
    .finally(() => { button.textContent = "Copied"; });
});
