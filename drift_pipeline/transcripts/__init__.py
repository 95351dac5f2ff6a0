"""Conversation transcripts rendered from stored messages: the rules (`render`), the
`raw.transcripts` copy the pipeline keeps (`store`), and `drift-pipeline export transcripts`
(`export`)."""
