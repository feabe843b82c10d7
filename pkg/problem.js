// The Error a `kiln serve` problem+json answer becomes (remote mode and federation clients).

/** An Error from a problem+json answer, with `httpStatus` and the problem `type`. */
export async function problemError(response, what) {
  let detail = `HTTP ${response.status}`;
  let type;
  try {
    const problem = await response.json();
    detail = problem.detail ?? detail;
    type = problem.type;
  } catch {
    /* not JSON */
  }
  const error = new Error(`${what}: ${detail}`);
  error.httpStatus = response.status;
  if (type) error.type = type;
  return error;
}
