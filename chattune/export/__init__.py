"""Export: GGUF for llama.cpp (and Ollama) through llama.cpp's own converter and quantiser, verified
in llama.cpp."""
