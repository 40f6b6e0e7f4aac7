/**
 * A pure function of an object, memoised per object identity. The informer cache hands the same
 * object until the API object changes, so a step over 1000 unchanged Leases or projections parses
 * none of them again. Only for inputs nobody mutates (cached API objects are replaced, not edited).
 */
export function memoByObject<A extends object, R>(fn: (a: A) => R): (a: A) => R {
  const memo = new WeakMap<A, R>();
  return (a) => {
    if (memo.has(a)) return memo.get(a) as R;
    const r = fn(a);
    memo.set(a, r);
    return r;
  };
}
