import { useCallback, useEffect, useState } from "react";

import {
  type Identity,
  TOKEN_KEY,
  clearToken,
  loadIdentity,
  saveToken,
  takeFragmentToken,
} from "../lib/token";
import { Shell } from "./Shell";
import { SignIn } from "./SignIn";

function initialIdentity(): Identity | null {
  const handed = takeFragmentToken(window.location, window.history);
  if (handed) {
    const identity = saveToken(handed);
    if (identity) return identity;
  }
  return loadIdentity();
}

export function App() {
  const [identity, setIdentity] = useState<Identity | null>(initialIdentity);
  const [why, setWhy] = useState<string | null>(null);

  // Signing in or out in one tab does the same in the others.
  useEffect(() => {
    const onStorage = (e: StorageEvent) => {
      if (e.key === TOKEN_KEY || e.key === null) setIdentity(loadIdentity());
    };
    window.addEventListener("storage", onStorage);
    return () => window.removeEventListener("storage", onStorage);
  }, []);

  const signIn = useCallback((token: string): string | null => {
    const saved = saveToken(token);
    if (!saved) return "That does not look like a LiveTutor token.";
    setWhy(null);
    setIdentity(saved);
    return null;
  }, []);

  const signOut = useCallback((reason?: string) => {
    clearToken();
    setWhy(reason ?? null);
    setIdentity(null);
  }, []);

  if (!identity) return <SignIn onToken={signIn} reason={why} />;
  return <Shell key={identity.token} identity={identity} onSignOut={signOut} />;
}
