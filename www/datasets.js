// Data sets the page can hand to Kiln: Fashion-MNIST's IDX files served by `make demo`, and a
// user's CSV file (previewed, with a label-column choice).

export const FASHION_CLASSES = [
  "T-shirt/top",
  "Trouser",
  "Pullover",
  "Dress",
  "Coat",
  "Sandal",
  "Shirt",
  "Sneaker",
  "Bag",
  "Ankle boot",
];

/** Whether the server offers Fashion-MNIST (Debian's dataset-fashion-mnist installed). */
export async function fashionAvailable() {
  try {
    const response = await fetch("datasets.json", { cache: "no-store" });
    return response.ok && (await response.json())["fashion-mnist"] === true;
  } catch {
    return false;
  }
}

async function fetchGunzipped(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`cannot fetch ${url}: HTTP ${response.status}`);
  const stream = response.body.pipeThrough(new DecompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function idx(bytes, magic, what) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.byteLength < 8 || view.getUint32(0) !== magic)
    throw new Error(`${what} is not an IDX file (bad magic number)`);
  return view;
}

/**
 * The Fashion-MNIST training set, at most `limit` samples: `{ features, labels, shape: [n, 1, 28, 28] }`.
 * `features` are the pixel bytes themselves (Kiln reads a Uint8Array as 0–255): no float copy on
 * the main thread, and a quarter of the bytes to clone into the worker.
 */
export async function loadFashionMnist(limit) {
  const base = "datasets/fashion-mnist/";
  const [images, labels] = await Promise.all([
    fetchGunzipped(`${base}train-images-idx3-ubyte.gz`),
    fetchGunzipped(`${base}train-labels-idx1-ubyte.gz`),
  ]);
  const imageView = idx(images, 0x00000803, "train-images");
  idx(labels, 0x00000801, "train-labels");
  const total = imageView.getUint32(4);
  const n = Math.min(total, limit > 0 ? limit : total);
  const size = imageView.getUint32(8) * imageView.getUint32(12);
  return {
    features: images.slice(16, 16 + n * size),
    labels: Int32Array.from(labels.subarray(8, 8 + n)),
    shape: [n, 1, 28, 28],
  };
}

/** Splits one CSV line (quoted fields allowed). */
export function splitCsvLine(line) {
  const cells = [];
  let cell = "",
    quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") {
      cells.push(cell.trim());
      cell = "";
    } else cell += c;
  }
  cells.push(cell.trim());
  return cells;
}

/** The first `rows` lines of a CSV text, split, plus whether the first line looks like a header. */
export function previewCsv(text, rows = 6) {
  const lines = text
    .split(/\r?\n/)
    .filter((l) => l.trim() !== "")
    .slice(0, rows);
  const table = lines.map(splitCsvLine);
  const looksLikeHeader = table.length > 0 && table[0].some((cell) => cell !== "" && Number.isNaN(Number(cell)));
  return { table, looksLikeHeader };
}
