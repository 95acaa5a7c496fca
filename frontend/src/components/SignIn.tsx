import { type FormEvent, useEffect, useId, useState } from "react";

import { type AuthConfig, ApiError, api } from "../lib/api";

interface Props {
  onToken: (token: string) => string | null;
  reason: string | null;
}

const input =
  "mt-1 block w-full rounded-lg border border-slate-400 bg-white px-3 py-2 text-slate-900 placeholder:text-slate-500 focus:border-blue-700";

export function SignIn({ onToken, reason }: Props) {
  const [config, setConfig] = useState<AuthConfig | null>(null);
  const [configError, setConfigError] = useState<string | null>(null);
  const [name, setName] = useState("");
  const [role, setRole] = useState("learner");
  const [courses, setCourses] = useState("demo");
  const [pasted, setPasted] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const ids = { name: useId(), role: useId(), courses: useId(), token: useId(), error: useId() };

  useEffect(() => {
    api.authConfig().then(setConfig, (e: unknown) => {
      setConfigError(e instanceof Error ? e.message : String(e));
      setConfig({ dev_signin: false, issuer: "", token_ttl_s: 0 });
    });
  }, []);

  const devSignIn = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const list = courses.split(/[\s,]+/).filter(Boolean);
      const { token } = await api.devToken(name.trim(), role, list.length ? list : ["demo"]);
      const problem = onToken(token);
      if (problem) setError(problem);
    } catch (err) {
      setError(err instanceof ApiError ? err.message : "Sign-in failed.");
    } finally {
      setBusy(false);
    }
  };

  const pasteSignIn = (e: FormEvent) => {
    e.preventDefault();
    setError(onToken(pasted));
  };

  return (
    <main className="min-h-full bg-slate-100 px-4 py-10 sm:py-16">
      <div className="mx-auto max-w-md">
        <h1 className="flex items-center gap-2 text-2xl font-semibold text-slate-900">
          <span aria-hidden="true" className="grid h-9 w-9 place-items-center rounded-lg bg-blue-900 text-lg font-bold text-white">
            T
          </span>
          LiveTutor
        </h1>
        <p className="mt-2 text-slate-700">Ask questions about your course and get answers grounded in its material.</p>
        {reason && (
          <p role="alert" className="mt-4 rounded-lg border border-amber-400 bg-amber-50 px-3 py-2 text-amber-900">
            {reason}
          </p>
        )}
        {error && (
          <p id={ids.error} role="alert" className="mt-4 rounded-lg border border-red-400 bg-red-50 px-3 py-2 text-red-900">
            {error}
          </p>
        )}

        {config?.dev_signin && (
          <form onSubmit={devSignIn} className="mt-6 rounded-xl bg-white p-5 shadow-sm ring-1 ring-slate-200" aria-labelledby="dev-title">
            <h2 id="dev-title" className="text-lg font-semibold text-slate-900">
              Sign in on this computer
            </h2>
            <p className="mt-1 text-sm text-slate-600">
              This server runs on its local defaults, so any name works. A real deployment signs you in through your
              organisation instead.
            </p>
            <label htmlFor={ids.name} className="mt-4 block text-sm font-medium text-slate-800">
              Your name
            </label>
            <input
              id={ids.name}
              className={input}
              value={name}
              onChange={(e) => setName(e.target.value)}
              required
              pattern="[A-Za-z0-9_.@:\-]{1,64}"
              title="1-64 letters, digits and _ . @ : -"
              autoComplete="username"
              placeholder="alice"
              autoFocus
            />
            <div className="mt-3 grid grid-cols-2 gap-3">
              <div>
                <label htmlFor={ids.role} className="block text-sm font-medium text-slate-800">
                  Role
                </label>
                <select id={ids.role} className={input} value={role} onChange={(e) => setRole(e.target.value)}>
                  <option value="learner">Learner</option>
                  <option value="instructor">Instructor</option>
                </select>
              </div>
              <div>
                <label htmlFor={ids.courses} className="block text-sm font-medium text-slate-800">
                  Courses
                </label>
                <input id={ids.courses} className={input} value={courses} onChange={(e) => setCourses(e.target.value)} />
              </div>
            </div>
            <button
              type="submit"
              disabled={busy || !name.trim()}
              className="mt-4 w-full rounded-lg bg-blue-800 px-4 py-2.5 font-medium text-white hover:bg-blue-900 disabled:bg-slate-400"
            >
              {busy ? "Signing in…" : "Sign in"}
            </button>
          </form>
        )}

        <form onSubmit={pasteSignIn} className="mt-6 rounded-xl bg-white p-5 shadow-sm ring-1 ring-slate-200" aria-labelledby="paste-title">
          <h2 id="paste-title" className="text-lg font-semibold text-slate-900">
            Sign in with a token
          </h2>
          <p className="mt-1 text-sm text-slate-600">
            Paste the token you were given, for example the output of{" "}
            <code className="rounded bg-slate-100 px-1 font-mono text-[0.85em]">livetutor token --user you</code>.
          </p>
          <label htmlFor={ids.token} className="mt-4 block text-sm font-medium text-slate-800">
            Token
          </label>
          <textarea
            id={ids.token}
            className={`${input} h-24 font-mono text-xs`}
            value={pasted}
            onChange={(e) => setPasted(e.target.value)}
            spellCheck={false}
            autoComplete="off"
            required
          />
          <button
            type="submit"
            disabled={!pasted.trim()}
            className="mt-4 w-full rounded-lg border border-blue-800 px-4 py-2.5 font-medium text-blue-900 hover:bg-blue-50 disabled:border-slate-300 disabled:text-slate-500"
          >
            Use this token
          </button>
        </form>
        {configError && <p className="mt-4 text-sm text-slate-600">The server did not answer: {configError}</p>}
      </div>
    </main>
  );
}
