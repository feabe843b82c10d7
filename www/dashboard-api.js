// The dashboard's calls to the API: the token, asked once per tab and kept in sessionStorage,
// goes with every request; a 401 asks for it again.

/** The element with this id. */
export const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "kiln-token";
let asking = null;

/** Asks for the token (once at a time) and keeps it for this tab. */
function askToken() {
  asking ??= new Promise((resolve) => {
    const dialog = $("token-dialog");
    dialog.addEventListener(
      "close",
      () => {
        sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
        asking = null;
        resolve();
      },
      { once: true },
    );
    dialog.showModal();
  });
  return asking;
}

/** fetch with the token; a 401 asks for it and tries again. */
export async function api(path, init = {}) {
  for (;;) {
    const token = sessionStorage.getItem(TOKEN_KEY);
    const headers = { ...(init.headers ?? {}) };
    if (token) headers.authorization = `Bearer ${token}`;
    const response = await fetch(path, { ...init, headers });
    if (response.status === 401) {
      await askToken();
      continue;
    }
    if (!response.ok) {
      const problem = await response.json().catch(() => ({}));
      throw new Error(problem.detail ?? `HTTP ${response.status}`);
    }
    return response;
  }
}

/** A JSON answer of the API. */
export const json = async (path) => (await api(path)).json();
