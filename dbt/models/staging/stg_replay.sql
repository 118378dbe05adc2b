-- The replay this run reads (var replay_version).
-- depends_on: {{ source('lake', 'replay') }}
select
    cast(candidate as varchar) as candidate,
    cast(conversation_id as varchar) as conversation_id,
    cast(status as varchar) as status,
    cast(error as varchar) as error,
    cast(attempts as integer) as attempts,
    cast(http_calls as integer) as http_calls,
    cast(cached_calls as integer) as cached_calls,
    cast(latency_ms as double) as latency_ms,
    cast(prompt_tokens as bigint) as prompt_tokens,
    cast(completion_tokens as bigint) as completion_tokens,
    cast(turn as varchar) as turn,  -- JSON text
    cast(tool_results as varchar) as tool_results  -- JSON text
from {{ lake_input('replay') }}
