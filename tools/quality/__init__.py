"""Dataset quality: likely label errors among the confirmed items (`suspects`)."""
