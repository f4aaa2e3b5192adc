"""Editor: applies edits to the language model (MEMIT, GRACE) and trains the default knowledge
model. Arrives with the editor issue; nothing here imports torch at package import time."""
