// Save text as a file the user downloads (an object URL, revoked right after).
export function download(filename, text, type = 'application/octet-stream') {
  const url = URL.createObjectURL(new Blob([text], {type}));
  const link = document.createElement('a');
  link.href = url;
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 0);
}

/** A safe file name from a workflow name. */
export function fileName(name, extension) {
  const base = String(name || 'workflow').replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^-+|-+$/g, '') || 'workflow';
  return `${base}.${extension}`;
}
