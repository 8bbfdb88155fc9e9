// A line diff (longest common subsequence), for comparing two versions side by side.

/** -> [{type: 'same'|'del'|'add', left?: line, right?: line, leftNo?, rightNo?}]. */
export function lineDiff(a, b) {
  const left = a.split('\n');
  const right = b.split('\n');
  const n = left.length;
  const m = right.length;
  const table = Array.from({length: n + 1}, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i -= 1) {
    for (let j = m - 1; j >= 0; j -= 1) {
      table[i][j] = left[i] === right[j] ? table[i + 1][j + 1] + 1 : Math.max(table[i + 1][j], table[i][j + 1]);
    }
  }
  const rows = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && left[i] === right[j]) {
      rows.push({type: 'same', left: left[i], right: right[j], leftNo: i + 1, rightNo: j + 1});
      i += 1; j += 1;
    } else if (j < m && (i === n || table[i][j + 1] >= table[i + 1][j])) {
      rows.push({type: 'add', right: right[j], rightNo: j + 1});
      j += 1;
    } else {
      rows.push({type: 'del', left: left[i], leftNo: i + 1});
      i += 1;
    }
  }
  return rows;
}
