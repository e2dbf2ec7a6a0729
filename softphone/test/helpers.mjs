// Shared by the softphone's node tests (not a test file itself).

// A fetch() stand-in: answers ({status, body, type} or an Error to throw)
// from a list in order, or from a function of (url, init); records each call.
export function fakeFetch(answers) {
  const calls = [];
  const impl = async (url, init) => {
    calls.push({ url, init });
    const a = typeof answers === 'function' ? answers(url, init) : answers.shift();
    if (a instanceof Error) {
      throw a;
    }
    const body = typeof a.body === 'string' ? a.body : JSON.stringify(a.body);
    return new Response(body, {
      status: a.status || 200,
      headers: { 'Content-Type': a.type || 'application/json' },
    });
  };
  return { impl, calls };
}

// A minimal async test runner: test(name, fn) collects, run(label) runs them
// in order, stops at the first failure and prints "<label>: N tests passed".
export function suite() {
  const tests = [];
  return {
    test(name, fn) {
      tests.push([name, fn]);
    },
    async run(label) {
      let passed = 0;
      for (const [name, fn] of tests) {
        try {
          // eslint-disable-next-line no-await-in-loop
          await fn();
          passed += 1;
        } catch (err) {
          console.error(`FAIL ${name}`);
          throw err;
        }
      }
      console.log(`${label}: ${passed} tests passed`);
    },
  };
}
